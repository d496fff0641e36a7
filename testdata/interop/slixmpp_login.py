#!/usr/bin/python3
"""Interop login check against a running XMPP server, using Debian's slixmpp.

Run it with /usr/bin/python3 (Debian's python3-slixmpp and python3-pyotp
install there, not into a pyenv interpreter that may come first on PATH).

Exit status: 0 only if every requested check worked; 1 when a check failed
(the reason is printed on stderr, one line starting with "FAIL:"); 2 for a
usage error. The whole run is bounded by --timeout seconds, so it never hangs.

Examples:
  /usr/bin/python3 slixmpp_login.py --port 5222 --domain localhost \
      --plain alice --password secret
  /usr/bin/python3 slixmpp_login.py --port 5222 --domain localhost \
      --xtoken alice --otp-seed XVGR73KMZH2M4XMY \
      --token-secret JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7 --check-replay \
      --message-to bob@localhost --body hello
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import signal
import ssl
import sys
import time

try:
    import pyotp
    import slixmpp
    from slixmpp.util.sasl.client import MECHANISMS, sasl_mech
    from slixmpp.util.sasl.mechanisms import PLAIN
except ImportError as exc:  # pragma: no cover - depends on the machine
    sys.stderr.write(
        "FAIL: cannot import slixmpp/pyotp (%s); install the Debian packages "
        "python3-slixmpp python3-pyotp and run with /usr/bin/python3\n" % exc)
    sys.exit(1)


# --------------------------------------------------------------------------
# The X-TOKEN SASL mechanism.
#
# mod_auth_token's mod_sasl_token.lua frames X-TOKEN exactly like PLAIN
# (RFC 4616): authzid NUL authcid NUL token. So the mechanism is PLAIN under
# another name. Subclassing keeps PLAIN's security rules: like PLAIN it is
# only used over an encrypted stream (the token is a bearer credential).
# The decorator puts it in slixmpp's global MECHANISMS registry, where
# slixmpp.util.sasl.choose() (used by the feature_mechanisms plugin) finds it.
# --------------------------------------------------------------------------
@sasl_mech(2)
class X_TOKEN(PLAIN):
    name = 'X-TOKEN'


assert MECHANISMS.get('X-TOKEN') is X_TOKEN, 'X-TOKEN not registered'


def mint_token(username, domain, otp_seed, token_secret, at=None, nonce=None):
    """Mint a token the way mod_auth_token's README does in Python.

    otp   = pyotp.TOTP(seed, digits=8, interval=30) at the current time
    nonce = 32 random decimal digits
    mac   = HMAC-SHA256(key=token_secret.encode(), msg=otp + nonce + jid)
    token = otp + nonce + ' ' + base64(mac), with jid = username@domain
    """
    totp = pyotp.TOTP(otp_seed, digits=8, interval=30)
    otp = totp.now() if at is None else totp.at(at)
    if nonce is None:
        nonce = ''.join(secrets.choice('0123456789') for _ in range(32))
    return sign_token(otp, nonce, '%s@%s' % (username, domain), token_secret)


def sign_token(otp, nonce, jid, token_secret):
    mac = hmac.new(token_secret.encode(), (otp + nonce + jid).encode(),
                   hashlib.sha256).digest()
    return otp + nonce + ' ' + base64.b64encode(mac).decode()


class CheckFailed(Exception):
    """A requested check did not work; str(exc) says why."""

    def __init__(self, message, kind='error'):
        super().__init__(message)
        self.kind = kind  # 'sasl-failure' when the server sent <failure/>


class Login:
    """One connection: STARTTLS, SASL with exactly one mechanism, bind,
    optionally presence + a chat message, then a clean stream close."""

    CLOSE_WAIT = 5.0  # seconds we wait for the server's </stream:stream>

    def __init__(self, args, username, secret, mech, label):
        self.args = args
        self.mech = mech
        self.label = label
        self.want_bare = '%s@%s' % (username, args.domain)
        self.error = None
        self.bound = None
        self.session_started = False
        self.end_reason = None
        self.done = asyncio.get_running_loop().create_future()

        xmpp = slixmpp.ClientXMPP(self.want_bare, secret)
        self.xmpp = xmpp
        # Offer the server exactly one mechanism: never fall back silently.
        xmpp['feature_mechanisms'].use_mech = mech
        # The test server on loopback presents a throwaway self-signed
        # certificate made for the test, with no CA to check it against, so
        # verification is off. This is acceptable only because the peer is
        # our own server on 127.0.0.1; TLS is still negotiated (STARTTLS) so
        # that the server's encryption requirement and PLAIN/X-TOKEN's
        # "only over TLS" rule are exercised. Never copy this to real use.
        xmpp.ssl_context.check_hostname = False
        xmpp.ssl_context.verify_mode = ssl.CERT_NONE
        # Connect to exactly --host:--port, with no SRV or A lookups of the
        # XMPP domain (which may be e.g. example.org): slixmpp resolves
        # default_domain and, for an IP literal, uses default_port.
        xmpp.default_domain = args.host
        xmpp.default_port = args.port

        for name, handler in (
                ('connection_failed', self._on_connection_failed),
                ('ssl_invalid_chain', self._on_ssl_invalid),
                ('stream_error', self._on_stream_error),
                ('failed_auth', self._on_failed_auth),
                ('no_auth', self._on_no_auth),
                ('auth_success', self._on_auth_success),
                ('session_bind', self._on_bind),
                ('session_start', self._on_session_start),
                ('disconnected', self._on_disconnected)):
            xmpp.add_event_handler(name, handler)

    # -- helpers ----------------------------------------------------------
    def _fail(self, message, kind='error'):
        if self.error is None:
            self.error = CheckFailed('%s: %s' % (self.label, message), kind)

    def _finish(self):
        if not self.done.done():
            self.done.set_result(None)

    # -- event handlers ---------------------------------------------------
    def _on_connection_failed(self, exc):
        self._fail('cannot connect to %s:%d: %s'
                   % (self.args.host, self.args.port, exc))
        # slixmpp would retry forever with back-off: stop it.
        self.xmpp.cancel_connection_attempt()
        self._finish()

    def _on_ssl_invalid(self, exc):
        self._fail('TLS handshake failed: %s' % exc)
        self.xmpp.abort()

    def _on_stream_error(self, err):
        self._fail('server sent stream error <%s/>%s' % (
            err['condition'], (': ' + err['text']) if err['text'] else ''))

    def _on_failed_auth(self, failure):
        text = failure['text']
        self._fail('server refused %s authentication: <%s/>%s' % (
            self.mech, failure['condition'], (': ' + text) if text else ''),
            kind='sasl-failure')

    def _on_no_auth(self, _event=None):
        offered = sorted(self.xmpp['feature_mechanisms'].mech_list)
        if 'starttls' not in self.xmpp.features:
            self._fail('stream is not encrypted (server did not offer '
                       'STARTTLS?); refusing to send %s credentials in clear'
                       % self.mech)
        elif self.mech not in offered:
            self._fail('mechanism %s not offered by the server (offered: %s)'
                       % (self.mech, ', '.join(offered) or 'none'))
        else:
            self._fail('mechanism %s could not be used (offered: %s)'
                       % (self.mech, ', '.join(offered)))

    def _on_auth_success(self, _stanza):
        if 'starttls' not in self.xmpp.features:
            self._fail('authenticated over an unencrypted stream')
            self.xmpp.abort()

    def _on_bind(self, jid):
        self.bound = slixmpp.JID(jid)

    def _on_session_start(self, _event):
        self.session_started = True
        jid = self.bound
        if jid is None or not jid.resource or not jid.user:
            self._fail('no full JID bound (got %r)' % (str(jid) if jid else None))
        elif jid.bare != slixmpp.JID(self.want_bare).bare:
            self._fail('bound JID %s is not the account %s'
                       % (jid.full, self.want_bare))
        else:
            self.session_ready()
            return
        self.xmpp.disconnect(wait=self.CLOSE_WAIT)

    def session_ready(self):
        """The session started with the right full JID bound. Here: send
        the optional presence + message and close; slixmpp_pair.py's
        subclass keeps the session open instead."""
        if self.args.message_to:
            self.xmpp.send_presence()
            self.xmpp.send_message(mto=self.args.message_to,
                                   mbody=self.args.body, mtype='chat')
        # disconnect() sends whatever is queued first, then </stream:stream>,
        # and waits up to CLOSE_WAIT for the server's own </stream:stream>;
        # slixmpp then reports the reason "End of stream" (else it aborts).
        self.xmpp.disconnect(wait=self.CLOSE_WAIT)

    def _on_disconnected(self, reason):
        self.end_reason = reason
        self._finish()

    # -- driver -----------------------------------------------------------
    async def run(self, timeout):
        """Return the bound full JID, or raise CheckFailed."""
        self.xmpp.connect(address=(self.args.host, self.args.port))
        try:
            await asyncio.wait_for(asyncio.shield(self.done), timeout)
        except asyncio.TimeoutError:
            self.xmpp.cancel_connection_attempt()
            self.xmpp.abort()
            self._fail('timed out after %.0f s (connected=%s, '
                       'authenticated=%s, bound=%s)' % (
                           timeout, self.xmpp.transport is not None,
                           self.xmpp.authenticated, self.bound))
        if self.error is not None:
            raise self.error
        if not self.session_started:
            raise CheckFailed('%s: connection closed before the session '
                              'started (authenticated=%s)'
                              % (self.label, self.xmpp.authenticated))
        if self.end_reason != 'End of stream':
            raise CheckFailed('%s: server did not answer our </stream:stream> '
                              'with its own within %.0f s (connection ended: '
                              '%r)' % (self.label, self.CLOSE_WAIT,
                                       self.end_reason))
        return self.bound.full


async def run_checks(args):
    deadline = time.monotonic() + args.timeout

    def remaining():
        left = deadline - time.monotonic()
        if left <= 0:
            raise CheckFailed('overall timeout of %.0f s used up' % args.timeout)
        return left

    async def login(user, secret, mech, label):
        jid = await Login(args, user, secret, mech, label).run(remaining())
        print('%s: OK, bound %s' % (label, jid), flush=True)
        return jid

    if args.plain:
        await login(args.plain, args.password, 'PLAIN', 'PLAIN login')

    if args.xtoken:
        token = mint_token(args.xtoken, args.domain,
                           args.otp_seed, args.token_secret)
        await login(args.xtoken, token, 'X-TOKEN', 'X-TOKEN login')
        if args.check_replay:
            label = 'X-TOKEN replay'
            try:
                jid = await Login(args, args.xtoken, token, 'X-TOKEN',
                                  label).run(remaining())
            except CheckFailed as exc:
                if exc.kind != 'sasl-failure':
                    raise CheckFailed('%s: expected a SASL failure, got: %s'
                                      % (label, exc))
                print('%s: OK, refused (%s)' % (label, exc), flush=True)
            else:
                raise CheckFailed('%s: the same token was accepted twice '
                                  '(bound %s)' % (label, jid))


def self_test(path):
    """Check mint_token against the project's vectors (no network)."""
    with open(path) as f:
        vectors = json.load(f)
    n = 0
    for case in vectors['cases']:
        token = case['token']
        if len(token) < 41 or token[40] != ' ':
            continue  # a deliberately malformed case
        otp, nonce = token[:8], token[8:40]
        # The server nodepreps the username before building the JID that
        # the MAC covers (the 'unicode-user-nodeprep' vector: Dave -> dave).
        jid = slixmpp.JID('%s@%s' % (case['username'], case['domain'])).bare
        # Valid vectors: the MAC over the vector's own otp+nonce must match.
        if case['valid'] and sign_token(otp, nonce, jid,
                                        vectors['token_secret']) != token:
            raise CheckFailed('self-test %s: MAC differs' % case['name'])
        # 'fresh' was minted at verify_unix: the whole token must match.
        want = mint_token(case['username'], case['domain'],
                          vectors['otp_seed'], vectors['token_secret'],
                          at=case['verify_unix'], nonce=nonce)
        if case['name'] == 'fresh' and want != token:
            raise CheckFailed('self-test fresh: minted %r, vector %r'
                              % (want, token))
        n += 1
    print('self-test: OK, %d vectors' % n)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description='Log in to an XMPP server with slixmpp (PLAIN and/or '
                    'X-TOKEN) and exit 0 only if every check worked.')
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, default=5222)
    p.add_argument('--domain', default='localhost', help='XMPP domain')
    p.add_argument('--plain', metavar='USER', help='log in with PLAIN')
    p.add_argument('--password', metavar='PW')
    p.add_argument('--xtoken', metavar='USER', help='log in with X-TOKEN')
    p.add_argument('--otp-seed', metavar='SEED')
    p.add_argument('--token-secret', metavar='SECRET')
    p.add_argument('--check-replay', action='store_true',
                   help='with --xtoken: the same token must fail a 2nd time')
    p.add_argument('--message-to', metavar='JID',
                   help='after login send presence and a chat message')
    p.add_argument('--body', metavar='TEXT', default='hello from slixmpp')
    p.add_argument('--timeout', type=float, default=20.0,
                   help='overall limit in seconds (default 20)')
    p.add_argument('--self-test', metavar='VECTORS_JSON',
                   help='only check token minting against x-token.json')
    p.add_argument('-v', '--verbose', action='store_true',
                   help='slixmpp debug log on stderr')
    args = p.parse_args(argv)
    if args.self_test:
        return args
    if not (args.plain or args.xtoken):
        p.error('give --plain USER and/or --xtoken USER')
    if args.plain and args.password is None:
        p.error('--plain needs --password')
    if args.xtoken and not (args.otp_seed and args.token_secret):
        p.error('--xtoken needs --otp-seed and --token-secret')
    if args.check_replay and not args.xtoken:
        p.error('--check-replay needs --xtoken')
    return args


def main(argv):
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.CRITICAL,
        format='slixmpp %(levelname)s %(name)s: %(message)s')

    # Backstop: even if the event loop got stuck, never outlive the timeout.
    def alarm(_sig, _frame):
        sys.stderr.write('FAIL: hard timeout (%.0f s) hit\n' % args.timeout)
        sys.stderr.flush()
        os._exit(1)
    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(int(args.timeout) + 5)

    try:
        if args.self_test:
            self_test(args.self_test)
        else:
            asyncio.run(run_checks(args))
    except CheckFailed as exc:
        sys.stderr.write('FAIL: %s\n' % exc)
        return 1
    except Exception as exc:  # a bug here or in slixmpp: still one clear line
        sys.stderr.write('FAIL: unexpected %s: %s\n'
                         % (type(exc).__name__, exc))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
