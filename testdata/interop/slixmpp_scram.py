#!/usr/bin/python3
"""Interop check of SCRAM logins (RFC 5802, RFC 7677) with slixmpp.

Run it with /usr/bin/python3 (Debian's python3-slixmpp). The login itself
comes from slixmpp_login.py in this directory (imported, not copied): one
account logs in once per mechanism given with --mech (slixmpp is offered
exactly that mechanism, so it never falls back to PLAIN), without channel
binding (see SCRAMLogin), binds, and closes the stream cleanly; each login must have used that mechanism and verified
the server's signature (slixmpp fails the login otherwise). With
--wrong-password the same mechanisms must then be refused with a SASL
failure; with --check-downgrade slixmpp's own choice of the gs2 flag ("y",
see SCRAMLogin) must be refused.

Exit status: 0 only if every check worked (a line per check on stdout);
1 when one failed ("FAIL: <check>: reason" on stderr, by slixmpp_pair's
run_main); 2 for a usage error.

Example:
  /usr/bin/python3 slixmpp_scram.py --port 5222 --domain localhost \\
      --user bob --password secret --mech SCRAM-SHA-256 --mech SCRAM-SHA-1
"""

import argparse
import sys
import time

# slixmpp_login reports a missing slixmpp itself (FAIL line, exit 1).
from slixmpp_login import CheckFailed, Login
from slixmpp_pair import run_main


class SCRAMLogin(Login):
    """A Login that records the mechanism slixmpp authenticated with.

    With channel_binding=False slixmpp is configured as a client without
    channel binding (its plugin option sasl_callback supplies no binding
    data), so it sends the gs2 flag "n". Left alone, slixmpp takes the
    socket's tls-unique data, a type TLS 1.3 does not define (RFC 9266)
    and ottr does not offer, and with a mechanism without -PLUS says "y"
    ("I bind, you cannot"): a server that offered -PLUS must refuse that
    as a downgrade (RFC 5802 section 6), and ottr does.
    """

    def __init__(self, args, username, secret, mech, label,
                 channel_binding=False):
        super().__init__(args, username, secret, mech, label)
        self.used = None
        self.xmpp.add_event_handler('auth_success', self._record_mech)
        if not channel_binding:
            fm = self.xmpp['feature_mechanisms']
            default = fm._default_credentials

            def without_binding(required, optional):
                creds = default(required, optional)
                if 'channel_binding' in creds:
                    creds['channel_binding'] = None
                return creds
            fm.sasl_callback = without_binding

    def _record_mech(self, _stanza):
        mech = self.xmpp['feature_mechanisms'].mech
        self.used = getattr(mech, 'name', None)


class Checks:
    """The checks, for slixmpp_pair.run_main: step names the one running."""

    def __init__(self, args):
        self.args = args
        self.peers = []  # SCRAMLogin ends its own connections
        self.step = 'start'

    async def run(self):
        args = self.args
        deadline = time.monotonic() + args.timeout

        def remaining():
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckFailed('overall timeout of %.0f s used up'
                                  % args.timeout)
            return left

        for mech in args.mech:
            self.step = label = '%s login' % mech
            login = SCRAMLogin(args, args.user, args.password, mech, label)
            jid = await login.run(remaining())
            if login.used != mech:
                raise CheckFailed('authenticated with %r, not %s'
                                  % (login.used, mech))
            print('%s: OK, bound %s' % (label, jid), flush=True)

        if args.check_downgrade:
            mech = args.mech[0]
            self.step = label = '%s with slixmpp\'s "y" flag' % mech
            try:
                jid = await SCRAMLogin(args, args.user, args.password, mech,
                                       label, channel_binding=True).run(
                                           remaining())
            except CheckFailed as exc:
                if exc.kind != 'sasl-failure' or 'channel binding' not in str(exc):
                    raise CheckFailed('expected a SASL failure about channel '
                                      'binding, got: %s' % exc)
                print('%s: OK, refused as a downgrade (%s)' % (label, exc),
                      flush=True)
            else:
                raise CheckFailed('logged in (bound %s) although the server '
                                  'offered -PLUS' % jid)

        if args.wrong_password:
            for mech in args.mech:
                self.step = label = '%s with a wrong password' % mech
                try:
                    jid = await SCRAMLogin(args, args.user,
                                           args.password + 'x', mech,
                                           label).run(remaining())
                except CheckFailed as exc:
                    if exc.kind != 'sasl-failure':
                        raise CheckFailed('expected a SASL failure, got: %s'
                                          % exc)
                    print('%s: OK, refused (%s)' % (label, exc), flush=True)
                else:
                    raise CheckFailed('logged in (bound %s)' % jid)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description='Log in with SCRAM mechanisms using slixmpp.')
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, default=5222)
    p.add_argument('--domain', default='localhost', help='XMPP domain')
    p.add_argument('--user', required=True)
    p.add_argument('--password', required=True)
    p.add_argument('--mech', action='append', required=True,
                   choices=['SCRAM-SHA-1', 'SCRAM-SHA-256'],
                   help='a mechanism to log in with (repeatable)')
    p.add_argument('--check-downgrade', action='store_true',
                   help='also check that slixmpp left to claim tls-unique '
                   '(flag "y") is refused, the server offering -PLUS')
    p.add_argument('--wrong-password', action='store_true',
                   help='also check a wrong password is refused')
    p.add_argument('--timeout', type=float, default=30.0,
                   help='seconds for the whole run')
    p.add_argument('-v', '--verbose', action='store_true',
                   help="slixmpp's debug log (all XML) on stderr")
    # Login reads these from the args of slixmpp_login.py.
    p.set_defaults(message_to=None, body='')
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    return run_main(args, Checks(args))


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
