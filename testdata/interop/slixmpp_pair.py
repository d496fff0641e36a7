#!/usr/bin/python3
"""Interop contact exchange between two slixmpp clients through an XMPP server.

Run it with /usr/bin/python3 (Debian's python3-slixmpp and python3-pyotp).
Token minting, the X-TOKEN mechanism and the login checks come from
slixmpp_login.py in this directory (imported, not copied).

Two clients, A and B, are logged in at the same time (each with PLAIN or
with an X-TOKEN minted as mod_auth_token's README does) and do, in order:

  setup   each fetches its roster (becoming an "interested resource" for
          roster pushes) and sends initial presence, waiting until the
          server echoes it back (RFC 6121 4.2.2), so both are available.
  step 1  A adds B to its roster (roster set with a name and a group) and
          sends <presence type='subscribe'/>; B's handler receives the
          request and B approves it ('subscribed') and subscribes back;
          A's handler receives that request and A approves it.
  step 2  both get roster pushes ending in subscription "both"; a fresh
          roster get on each side says "both" too (A's item keeps the name
          and group), and so does slixmpp's client_roster; each has
          received the other's available presence.
  step 3  A sends B a chat message, B replies; each checks the text and
          that the from is the other's bound full JID.
  step 4  B disconnects; A sees B's unavailable presence, sends a message
          to B's bare JID (a ping answered afterwards proves the server
          handled it), B logs in again, sends presence and receives the
          message with an XEP-0203 delay stamp.

Every wait is on an event (a stanza arriving), bounded by --timeout for the
whole run. Exit status: 0 only if every step worked (one line per step on
stdout); 1 when a step failed ("FAIL: step N (...): reason" on stderr; -v
puts slixmpp's debug log, with all XML, on stderr before it); 2 for a usage
error.

Example:
  /usr/bin/python3 slixmpp_pair.py --port 5222 --domain localhost \\
      --a-xtoken alice --otp-seed XVGR73KMZH2M4XMY \\
      --token-secret JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7 \\
      --b-plain bob --b-password secret
"""

import argparse
import asyncio
import datetime
import logging
import os
import secrets
import signal
import sys
import time

# Imported for its side effects too: it registers the X-TOKEN mechanism, and
# exits with a clear FAIL line when slixmpp/pyotp are missing.
import slixmpp_login
from slixmpp_login import CheckFailed, Login, mint_token

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout


class Deadline:
    """The run's overall time limit."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self, what):
        left = self.end - time.monotonic()
        if left <= 0:
            raise CheckFailed('overall timeout of %g s used up before %s'
                              % (self.seconds, what))
        return left


class Peer(Login):
    """A client that stays connected after session start and records what
    it receives (presence, messages, roster pushes), so the driver can wait
    for a given stanza without sleeping."""

    def __init__(self, args, account, label):
        user, mech, password = account
        if mech == 'X-TOKEN':
            # A fresh token for every login: tokens are single-use.
            secret = mint_token(user, args.domain, args.otp_seed,
                                args.token_secret)
        else:
            secret = password
        self.changed = asyncio.Event()
        super().__init__(args, user, secret, mech, label)
        self.ready = False
        self.presence_sent = False
        self.presences = []   # every <presence/> received
        self.messages = []    # (message, presence_sent at arrival)
        self.pushes = []      # (contact bare JID, item dict) per pushed item
        xmpp = self.xmpp
        # No automatic subscription handling: the driver answers requests
        # explicitly, after its handler saw them arrive.
        xmpp.auto_authorize = None
        xmpp.auto_subscribe = False
        xmpp.register_plugin('xep_0203')  # msg['delay']
        xmpp.register_plugin('xep_0199')  # ping, used as a barrier
        xmpp.add_event_handler('presence', self._on_presence)
        xmpp.add_event_handler('message', self._on_message)
        # Runs after ClientXMPP's own roster_update handler (registered
        # first), so client_roster is already updated when we poke.
        xmpp.add_event_handler('roster_update', self._on_roster)

    # -- recording ----------------------------------------------------------
    def poke(self):
        self.changed.set()

    def _fail(self, message, kind='error'):
        super()._fail(message, kind)
        self.poke()

    def _finish(self):
        super()._finish()
        self.poke()

    def session_ready(self):
        self.ready = True
        self.poke()

    def _on_presence(self, pres):
        self.presences.append(pres)
        self.poke()

    def _on_message(self, msg):
        self.messages.append((msg, self.presence_sent))
        self.poke()

    def _on_roster(self, iq):
        if iq['type'] == 'set':
            for contact, item in iq['roster']['items'].items():
                self.pushes.append((slixmpp.JID(contact).bare, dict(item)))
        self.poke()

    # -- queries over what was received ----------------------------------------
    @property
    def jid(self):
        return self.xmpp.boundjid

    def presence_from(self, frm, ptype, full=False):
        for p in self.presences:
            f = p['from'].full if full else p['from'].bare
            if f == frm and p['type'] == ptype:
                return p
        return None

    def pushed(self, contact, **want):
        for c, item in self.pushes:
            if c == contact and all(item.get(k) == v for k, v in want.items()):
                return item
        return None

    def message_with(self, body):
        for msg, after_presence in self.messages:
            if msg['body'] == body:
                return msg, after_presence
        return None

    # -- waiting -------------------------------------------------------------
    async def wait(self, pred, what, deadline):
        """Return pred()'s first true value, re-checked whenever a stanza
        arrives; fail on a connection error, its end, or the deadline.
        what describes it for errors (a callable: evaluated on failure)."""
        describe_wait = what if callable(what) else (lambda: what)
        while True:
            if self.error is not None:
                raise self.error
            got = pred()
            if got:
                return got
            if self.done.done():
                raise CheckFailed('%s: connection ended (%r) while waiting for '
                                  '%s' % (self.label, self.end_reason,
                                          describe_wait()))
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(),
                                       deadline.left(describe_wait()))
            except asyncio.TimeoutError:
                raise CheckFailed('%s: timed out waiting for %s'
                                  % (self.label, describe_wait())) from None

    async def start(self, deadline):
        self.xmpp.connect(address=(self.args.host, self.args.port))
        await self.wait(lambda: self.ready, lambda: 'session start (connected=%s, '
                        'authenticated=%s, bound=%s)' % (
                            self.xmpp.transport is not None,
                            self.xmpp.authenticated, self.bound), deadline)
        print('login %s (%s): OK, bound %s' % (self.label, self.mech,
                                               self.jid.full), flush=True)

    async def iq(self, iq, what, deadline):
        return await self.answer(iq.send(timeout=deadline.left(what)), what)

    async def answer(self, future, what):
        """The result of an iq future, or CheckFailed for an error/timeout."""
        try:
            return await future
        except IqError as exc:
            err = exc.iq['error']
            raise CheckFailed('%s: %s: server answered with error <%s/> '
                              '(type %s)%s' % (
                                  self.label, what, err['condition'],
                                  err['type'],
                                  (': ' + err['text']) if err['text'] else ''))
        except IqTimeout:
            raise CheckFailed('%s: %s: no answer in time'
                              % (self.label, what)) from None

    async def roster_get(self, deadline):
        """A full roster get (no ver); slixmpp's client_roster is updated
        from the result as get_roster() does. Returns {bare JID: item}."""
        iq = self.xmpp.Iq(stype='get')
        iq.enable('roster')
        resp = await self.iq(iq, 'roster get', deadline)
        self.xmpp.event('roster_update', resp)
        return {slixmpp.JID(j).bare: dict(v)
                for j, v in resp['roster']['items'].items()}

    async def ping_server(self, deadline):
        try:
            await self.xmpp['xep_0199'].send_ping(
                self.args.domain, timeout=deadline.left('ping'))
        except IqError as exc:
            raise CheckFailed('%s: ping: server answered with error <%s/>'
                              % (self.label, exc.iq['error']['condition']))
        except IqTimeout:
            raise CheckFailed('%s: ping: no answer in time' % self.label)

    async def initial_presence(self, deadline):
        self.presence_sent = True
        self.xmpp.send_presence()
        await self.wait(lambda: self.presence_from(self.jid.full, 'available',
                                                   full=True),
                        'the server to echo our initial presence', deadline)

    async def close(self, deadline):
        self.xmpp.disconnect(wait=self.CLOSE_WAIT)
        try:
            await asyncio.wait_for(asyncio.shield(self.done),
                                   deadline.left('stream close'))
        except asyncio.TimeoutError:
            raise CheckFailed('%s: stream did not close in time' % self.label)
        if self.end_reason != 'End of stream':
            raise CheckFailed('%s: server did not answer our </stream:stream> '
                              'with its own (connection ended: %r)'
                              % (self.label, self.end_reason))

    def abort(self):
        if not self.done.done():
            self.xmpp.cancel_connection_attempt()
            self.xmpp.abort()


def describe(item):
    return 'subscription=%s%s name=%r groups=%r' % (
        item.get('subscription'),
        ' ask=%s' % item['ask'] if item.get('ask') else '',
        item.get('name'), item.get('groups'))


class Pair:
    GROUP = 'ottr interop'

    def __init__(self, args):
        self.args = args
        self.deadline = Deadline(args.timeout)
        self.step = 'setup'
        self.peers = []
        self.tag = secrets.token_hex(4)  # ignore anything from earlier runs

    def peer(self, account, label):
        p = Peer(self.args, account, label)
        self.peers.append(p)
        return p

    def say(self, text):
        print('%s: %s' % (self.step, text), flush=True)

    async def run(self):
        d = self.deadline
        a = self.peer(self.args.a, 'A')
        b = self.peer(self.args.b, 'B')
        await asyncio.gather(a.start(d), b.start(d))
        abare, bbare = a.jid.bare, b.jid.bare
        if abare == bbare:
            raise CheckFailed('A and B are the same account %s' % abare)

        # setup: rosters, leftovers of an earlier run, initial presence.
        for me, other in ((a, bbare), (b, abare)):
            items = await me.roster_get(d)
            if other in items:
                self.say('%s: removing leftover roster item %s (%s)' % (
                    me.label, other, describe(items[other])))
                iq = me.xmpp.Iq(stype='set')
                iq['roster']['items'] = {other: {'subscription': 'remove'}}
                await me.iq(iq, 'roster remove of %s' % other, d)
                await me.wait(lambda: me.pushed(other, subscription='remove'),
                              'the roster push removing %s' % other, d)
                me.pushes.clear()
        await a.initial_presence(d)
        await b.initial_presence(d)
        self.say('OK, both rosters fetched, both available (initial '
                 'presence echoed by the server)')

        await self.subscribe(a, b)
        await self.check_both(a, b)
        await self.chat(a, b)
        await self.offline(a, b)

        self.step = 'close'
        for p in list(self.peers):
            if not p.done.done():
                await p.close(d)
        print('all steps OK', flush=True)

    async def subscribe(self, a, b):
        d = self.deadline
        self.step = 'step 1 (subscription)'
        abare, bbare = a.jid.bare, b.jid.bare
        name = 'B (%s)' % self.tag

        # slixmpp's roster API: sends <iq type='set'> with the item.
        await a.answer(a.xmpp.update_roster(
            bbare, name=name, groups=[self.GROUP],
            timeout=d.left('roster set')), 'roster set of %s' % bbare)
        item = await a.wait(lambda: a.pushed(bbare, name=name,
                                             groups=[self.GROUP]),
                            'the roster push for %s with name %r and group '
                            '%r' % (bbare, name, self.GROUP), d)
        self.say('A: roster set %s name=%r group=%r; pushed back: %s'
                 % (bbare, name, self.GROUP, describe(item)))

        a.xmpp.send_presence(pto=bbare, ptype='subscribe')
        item = await a.wait(lambda: a.pushed(bbare, ask='subscribe'),
                            'the roster push for %s with ask="subscribe" '
                            '(RFC 6121 3.1.2)' % bbare, d)
        self.say('A: sent subscribe to %s; pushed: %s' % (bbare, describe(item)))

        req = await b.wait(lambda: b.presence_from(abare, 'subscribe'),
                           'the subscription request from %s' % abare, d)
        if req['from'].full != abare:
            raise CheckFailed('B: subscription request from %s, not the bare '
                              'JID %s (RFC 6121 3.1.3)' % (req['from'], abare))
        self.say('B: received subscribe from %s; approving and subscribing '
                 'back' % req['from'])
        b.xmpp.send_presence(pto=abare, ptype='subscribed')
        b.xmpp.send_presence(pto=abare, ptype='subscribe')

        got = await a.wait(lambda: a.presence_from(bbare, 'subscribed'),
                           'subscribed from %s' % bbare, d)
        self.say('A: received subscribed from %s' % got['from'])
        req = await a.wait(lambda: a.presence_from(bbare, 'subscribe'),
                           'the subscription request from %s' % bbare, d)
        if req['from'].full != bbare:
            raise CheckFailed('A: subscription request from %s, not the bare '
                              'JID %s (RFC 6121 3.1.3)' % (req['from'], bbare))
        self.say('A: received subscribe from %s; approving' % req['from'])
        a.xmpp.send_presence(pto=bbare, ptype='subscribed')
        got = await b.wait(lambda: b.presence_from(abare, 'subscribed'),
                           'subscribed from %s' % abare, d)
        self.say('B: received subscribed from %s' % got['from'])
        self.say('OK')

    async def check_both(self, a, b):
        d = self.deadline
        self.step = 'step 2 (rosters and presence)'
        name = 'B (%s)' % self.tag
        for me, other in ((a, b), (b, a)):
            ob = other.jid.bare
            item = await me.wait(lambda: me.pushed(ob, subscription='both'),
                                 'a roster push with subscription "both" '
                                 'for %s' % ob, d)
            self.say('%s: roster push for %s: %s' % (me.label, ob,
                                                     describe(item)))
        for me, other in ((a, b), (b, a)):
            ob = other.jid.bare
            items = await me.roster_get(d)
            item = items.get(ob)
            if item is None:
                raise CheckFailed('%s: roster get has no item for %s (items: '
                                  '%s)' % (me.label, ob, sorted(items)))
            if item.get('subscription') != 'both' or item.get('ask'):
                raise CheckFailed('%s: roster get has %s for %s, want '
                                  'subscription "both" and no ask'
                                  % (me.label, describe(item), ob))
            if me is a and (item.get('name') != name
                            or item.get('groups') != [self.GROUP]):
                raise CheckFailed('A: roster get lost the name/group of %s: '
                                  '%s' % (ob, describe(item)))
            sub = me.xmpp.client_roster[ob]['subscription']
            if sub != 'both':
                raise CheckFailed('%s: client_roster[%s] subscription is %r'
                                  % (me.label, ob, sub))
            self.say('%s: roster get: %s %s; client_roster says %s'
                     % (me.label, ob, describe(item), sub))
        for me, other in ((a, b), (b, a)):
            p = await me.wait(
                lambda: me.presence_from(other.jid.full, 'available',
                                         full=True),
                'available presence from %s' % other.jid.full, d)
            self.say('%s: has available presence from %s' % (me.label,
                                                             p['from']))
        self.say('OK')

    async def chat(self, a, b):
        d = self.deadline
        self.step = 'step 3 (chat)'
        hello = 'hello B, from A (%s)' % self.tag
        reply = 'hello A, from B (%s)' % self.tag
        a.xmpp.send_message(mto=b.jid.bare, mbody=hello, mtype='chat')
        msg, _ = await b.wait(lambda: b.message_with(hello),
                              'the chat message %r' % hello, d)
        if msg['from'].full != a.jid.full:
            raise CheckFailed('B: message from %s, want A\'s full JID %s'
                              % (msg['from'], a.jid.full))
        self.say('B: received %r from %s' % (msg['body'], msg['from']))
        b.xmpp.send_message(mto=msg['from'], mbody=reply, mtype='chat')
        msg, _ = await a.wait(lambda: a.message_with(reply),
                              'the reply %r' % reply, d)
        if msg['from'].full != b.jid.full:
            raise CheckFailed('A: reply from %s, want B\'s full JID %s'
                              % (msg['from'], b.jid.full))
        self.say('A: received %r from %s' % (msg['body'], msg['from']))
        self.say('OK')

    async def offline(self, a, b):
        d = self.deadline
        self.step = 'step 4 (offline message)'
        bfull, bbare = b.jid.full, b.jid.bare
        await b.close(d)
        self.say('B: disconnected (stream closed cleanly)')
        await a.wait(lambda: a.presence_from(bfull, 'unavailable', full=True),
                     'unavailable presence from %s' % bfull, d)
        self.say('A: received unavailable presence from %s' % bfull)

        body = 'while you were away (%s)' % self.tag
        sent = datetime.datetime.now(datetime.timezone.utc)
        a.xmpp.send_message(mto=bbare, mbody=body, mtype='chat')
        # The server handles a stream's stanzas in order: once it answers a
        # later ping, the message was routed (stored) before B logs in.
        await a.ping_server(d)
        self.say('A: sent %r to %s (server answered a ping after it)'
                 % (body, bbare))

        b2 = self.peer(self.args.b, 'B again')
        await b2.start(d)
        items = await b2.roster_get(d)
        item = items.get(a.jid.bare)
        if item is None or item.get('subscription') != 'both':
            raise CheckFailed('B again: roster get after reconnecting has %s '
                              'for %s, want subscription "both"'
                              % (describe(item) if item else 'no item',
                                 a.jid.bare))
        if b2.message_with(body):
            raise CheckFailed('B again: offline message delivered before '
                              'initial presence (XEP-0160)')
        await b2.initial_presence(d)
        msg, after_presence = await b2.wait(
            lambda: b2.message_with(body),
            'the offline message %r' % body, d)
        if not after_presence:
            raise CheckFailed('B again: offline message delivered before '
                              'initial presence (XEP-0160)')
        if msg['from'].bare != a.jid.bare:
            raise CheckFailed('B again: offline message from %s, want %s'
                              % (msg['from'], a.jid.bare))
        if msg.xml.find('{urn:xmpp:delay}delay') is None:
            raise CheckFailed('B again: offline message has no XEP-0203 '
                              '<delay/>: %s' % msg)
        stamp = msg['delay']['stamp']
        if not stamp:
            raise CheckFailed('B again: offline message\'s <delay/> has no '
                              'stamp: %s' % msg)
        now = datetime.datetime.now(datetime.timezone.utc)
        slack = datetime.timedelta(seconds=5)
        if not (sent - slack <= stamp <= now + slack):
            raise CheckFailed('B again: delay stamp %s is not between the '
                              'send (%s) and now (%s)' % (
                                  stamp.isoformat(), sent.isoformat(),
                                  now.isoformat()))
        self.say('B again: received %r from %s with delay stamp %s (from %s)'
                 % (msg['body'], msg['from'], stamp.isoformat(),
                    msg['delay']['from'] or '-'))
        self.say('OK')


def parse_args(argv):
    p = argparse.ArgumentParser(
        description='Two slixmpp clients exchange contacts, presence and '
                    'messages (live and offline) through an XMPP server; '
                    'exit 0 only if every step worked.')
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, default=5222)
    p.add_argument('--domain', default='localhost', help='XMPP domain')
    for who in ('a', 'b'):
        W = who.upper()
        p.add_argument('--%s-plain' % who, metavar='USER',
                       help='%s logs in with PLAIN' % W)
        p.add_argument('--%s-password' % who, metavar='PW')
        p.add_argument('--%s-xtoken' % who, metavar='USER',
                       help='%s logs in with a freshly minted X-TOKEN' % W)
    p.add_argument('--otp-seed', metavar='SEED')
    p.add_argument('--token-secret', metavar='SECRET')
    p.add_argument('--timeout', type=float, default=40.0,
                   help='overall limit in seconds (default 40)')
    p.add_argument('-v', '--verbose', action='store_true',
                   help='slixmpp debug log (with all XML) on stderr')
    args = p.parse_args(argv)
    for who in ('a', 'b'):
        plain = getattr(args, '%s_plain' % who)
        xtoken = getattr(args, '%s_xtoken' % who)
        password = getattr(args, '%s_password' % who)
        if bool(plain) == bool(xtoken):
            p.error('give exactly one of --%s-plain USER and --%s-xtoken USER'
                    % (who, who))
        if plain and password is None:
            p.error('--%s-plain needs --%s-password' % (who, who))
        if xtoken and not (args.otp_seed and args.token_secret):
            p.error('--%s-xtoken needs --otp-seed and --token-secret' % who)
        setattr(args, who, (plain, 'PLAIN', password) if plain
                else (xtoken, 'X-TOKEN', None))
    return args


async def run_pair(pair):
    try:
        await pair.run()
    finally:
        for p in pair.peers:
            p.abort()


def main(argv):
    args = parse_args(argv)
    return run_main(args, Pair(args))


def accounts_parser(description, users=('alice', 'bob')):
    """Return an argument parser with what the scripts that log in named
    accounts with PLAIN share: the server (--host, --port, --domain), a
    password for each of users (--<user>-password), --timeout (default 60 s)
    and -v; the parsed args also have message_to, which Peer and Login
    read. A script adds its own arguments to it."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, default=5222)
    p.add_argument('--domain', default='localhost', help='XMPP domain')
    for user in users:
        p.add_argument('--%s-password' % user, required=True, metavar='PW')
    p.add_argument('--timeout', type=float, default=60.0,
                   help='overall limit in seconds (default 60)')
    p.add_argument('-v', '--verbose', action='store_true',
                   help='slixmpp debug log (with all XML) on stderr')
    p.set_defaults(message_to=None)
    return p


def run_main(args, pair):
    """Run pair (anything with run(), peers and step, as slixmpp_mobile.py's
    scenarios) under args.timeout; print a FAIL line and return 1 when a
    step failed, else return 0."""
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
        asyncio.run(run_pair(pair))
    except CheckFailed as exc:
        sys.stdout.flush()
        sys.stderr.write('FAIL: %s: %s\n' % (pair.step, exc))
        return 1
    except Exception as exc:  # a bug here or in slixmpp: still one clear line
        sys.stdout.flush()
        sys.stderr.write('FAIL: %s: unexpected %s: %s\n'
                         % (pair.step, type(exc).__name__, exc))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
