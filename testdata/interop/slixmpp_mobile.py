#!/usr/bin/python3
"""Interop checks of the mobile-client features of an XMPP server, with slixmpp.

Run it with /usr/bin/python3 (Debian's python3-slixmpp). Logins, the peers
that record what they receive and the waits come from slixmpp_login.py and
slixmpp_pair.py in this directory (imported, not copied). Accounts alice and
bob log in with PLAIN (--alice-password, --bob-password). One scenario per
run:

  sm       XEP-0198 stream management (plugin xep_0198). alice connects
           through a proxy (--proxy-port) whose control server (--control,
           see cmd/ottr/interop_mobile_test.go) can black-hole what the
           server sends and cut the connection. alice enables stream
           management with resumption (an id in <enabled/>); bob sends her
           messages; the server acks what she sends (acks both ways); the
           proxy black-holes while bob sends a burst (in flight when the
           connection dies), cuts (a reset, no </stream:stream>), bob sends
           more while she is away (half to her full JID, half to her bare
           JID: a session waiting for resumption keeps its resource and its
           presence); alice reconnects and resumes (session_resumed, no new
           bind) and has every message exactly once, in order; a message
           she sends after resuming reaches bob once.
  carbons  XEP-0280 carbons (plugin xep_0280). alice has two resources,
           both enable carbons: a message from bob to one is a received
           carbon on the other; one's message to bob is a sent carbon on
           the other (never on itself); messages with <private/> and
           <no-copy/> are not copied, either way; a message to alice's bare
           JID reaches each resource exactly once (as itself or as a
           carbon); after one disables carbons it gets none.
  mam      XEP-0313 message archive (plugin xep_0313, RSM of XEP-0059).
           alice and bob exchange --messages chat messages; each alice
           receives carries an XEP-0359 <stanza-id by='alice'/>; alice's
           archive, queried with bob and a start time, paged by --page
           forward and then backward, has every message exactly once, in
           order, with the right sender, pages of at most --page results,
           and <fin complete='true'/> on the page that reaches the end; the
           archive ids are the stanza-ids she saw.

Every wait is on an event, bounded by --timeout for the whole run. Exit
status: 0 only if every step worked (a line per step on stdout, then "all
steps OK"); 1 when one failed ("FAIL: <step>: reason" on stderr; -v puts
slixmpp's debug log, with all XML, on stderr before it); 2 for a usage error.

Example:
  /usr/bin/python3 slixmpp_mobile.py mam --port 5222 --domain localhost \\
      --alice-password secret --bob-password secret
"""

import asyncio
import copy
import datetime
import json
import secrets
import sys
import urllib.request
import xml.etree.ElementTree as ET

# Imported for its side effects too: it exits with a clear FAIL line when
# slixmpp is missing.
import slixmpp_login  # noqa: F401
from slixmpp_login import CheckFailed
from slixmpp_pair import Deadline, Peer, accounts_parser, run_main

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.plugins.xep_0198 import stanza as sm_stanza

NS_CARBONS = 'urn:xmpp:carbons:2'
NS_HINTS = 'urn:xmpp:hints'
NS_SID = 'urn:xmpp:sid:0'


class SMPeer(Peer):
    """A Peer with stream management (XEP-0198, resumption asked) that
    survives one expected cut of its connection and records the stream
    management events."""

    def __init__(self, args, account, label):
        super().__init__(args, account, label)
        xmpp = self.xmpp
        xmpp.register_plugin('xep_0198')
        self.sessions = 0         # session_start events (binds)
        self.negotiated = 0       # stream_negotiated events
        self.enabled = None       # the <enabled/> element
        self.resumed = None       # True once the session_resumed event came
        self.sm_failed = None     # a <failed/> element
        self.acked = []           # stanzas the server acked
        self.expect_cut = False
        self.cut = False          # the expected cut was seen
        self.cut_reason = None
        for name, handler in (('sm_enabled', self._on_enabled),
                              ('session_resumed', self._on_resumed),
                              ('sm_failed', self._on_sm_failed),
                              ('stanza_acked', self._on_acked),
                              ('stream_negotiated', self._on_negotiated)):
            xmpp.add_event_handler(name, handler)

    def session_ready(self):
        self.sessions += 1
        super().session_ready()

    def _on_enabled(self, el):
        self.enabled = el
        self.poke()

    def _on_resumed(self, _el):
        # slixmpp passes the last stanza it resent, not <resumed/>.
        self.resumed = True
        self.poke()

    def _on_sm_failed(self, el):
        self.sm_failed = el
        self.poke()

    def _on_negotiated(self, _event):
        # After every feature, <enable/> and its answer included.
        self.negotiated += 1
        self.poke()

    def _on_acked(self, stanza):
        self.acked.append(stanza)
        self.poke()

    def _on_disconnected(self, reason):
        if self.expect_cut:
            self.expect_cut = False
            self.cut = True
            self.cut_reason = reason
            self.poke()
            return
        super()._on_disconnected(reason)

    def send_acked(self, to, body):
        """Send a chat message and then <r/>. The plugin's own <r/> (every
        'window' stanzas) goes out by send_raw, ahead of the stanza queue,
        so before the stanza that triggered it: an <r/> sent as a stanza
        is queued after the message and its <a/> covers it."""
        self.xmpp.send_message(mto=to, mbody=body, mtype='chat')
        sm_stanza.RequestAck(self.xmpp).send()

    def acked_body(self, body):
        return any(s.name == 'message' and s['body'] == body
                   for s in self.acked)

    def bodies(self, prefix):
        return [m['body'] for m, _ in self.messages
                if m['body'].startswith(prefix)]


class Scenario:
    """What the three scenarios share: the deadline, the peers, the step
    being run (named in a failure) and a tag against leftovers."""

    def __init__(self, args):
        self.args = args
        self.deadline = Deadline(args.timeout)
        self.step = 'setup'
        self.peers = []
        self.tag = secrets.token_hex(4)

    def peer(self, user, label, cls=Peer, port=None):
        args = self.args
        if port is not None:
            args = copy.copy(args)
            args.port = port
        p = cls(args, (user, 'PLAIN', getattr(self.args, user + '_password')),
                label)
        self.peers.append(p)
        return p

    def say(self, text):
        print('%s: %s' % (self.step, text), flush=True)

    async def close(self):
        self.step = 'close'
        for p in self.peers:
            if not p.done.done():
                await p.close(self.deadline)
        print('all steps OK', flush=True)


# --------------------------------------------------------------------------
# sm
# --------------------------------------------------------------------------
class SM(Scenario):

    async def control(self, method, path):
        """A request to the proxy's control server (off the event loop)."""
        def do():
            req = urllib.request.Request(self.args.control + path,
                                         method=method)
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.read().decode()
        try:
            return await asyncio.get_running_loop().run_in_executor(None, do)
        except OSError as exc:
            raise CheckFailed('proxy control %s %s: %s' % (method, path, exc))

    async def wait_in_flight(self):
        """Wait until the proxy dropped some bytes the server sent."""
        d = self.deadline
        while True:
            stats = json.loads(await self.control('GET', '/stats'))
            if stats['discarded'] > 0:
                return stats['discarded']
            d.left('the server to write to the black-holed connection')
            await asyncio.sleep(0.05)

    def send_burst(self, b, to, names):
        for n in names:
            b.xmpp.send_message(mto=to(n), mbody=self.body(n), mtype='chat')

    def body(self, n):
        return 'm%02d (%s)' % (n, self.tag)

    async def run(self):
        d = self.deadline
        a = self.peer('alice', 'alice', SMPeer, port=self.args.proxy_port)
        b = self.peer('bob', 'bob')
        await asyncio.gather(a.start(d), b.start(d))
        await a.wait(lambda: a.enabled is not None or a.sm_failed is not None
                     or a.negotiated > 0,
                     'the answer to <enable resume="true"/>', d)
        if a.enabled is None and a.sm_failed is None:
            raise CheckFailed('alice: the server offered no stream management '
                              '(no <sm xmlns="urn:xmpp:sm:3"/> among the '
                              'stream features after authentication)')
        if a.enabled is None:
            raise CheckFailed('alice: <enable resume="true"/> answered with '
                              '<failed/>: %s' % a.sm_failed)
        el = a.enabled
        if not el['id'] or not el['resume']:
            raise CheckFailed('alice: <enabled/> without resumption (id=%r '
                              'resume=%r): %s' % (el['id'], el['resume'], el))
        self.say('alice: stream management enabled: id=%s resume=%s max=%s'
                 % (el['id'], el['resume'], el['max'] or '-'))
        await a.initial_presence(d)
        await b.initial_presence(d)
        afull, abare = a.jid.full, a.jid.bare

        self.step = 'step 1 (live, acks both ways)'
        self.send_burst(b, lambda n: afull, range(1, 6))
        await a.wait(lambda: len(a.bodies('m')) >= 5,
                     lambda: 'm01..m05 (got %s)' % a.bodies('m'), d)
        hello = 'hello bob, from alice (%s)' % self.tag
        a.send_acked(b.jid.bare, hello)
        await b.wait(lambda: b.message_with(hello), 'alice\'s message', d)
        await a.wait(lambda: a.acked_body(hello),
                     'the server\'s <a/> acking alice\'s message', d)
        self.say('alice: got m01..m05; the server acked her message '
                 '(h=%d), bob got it' % a.xmpp['xep_0198'].last_ack)

        self.step = 'step 2 (burst in flight, then the connection is cut)'
        await self.control('POST', '/blackhole')
        self.send_burst(b, lambda n: abare if n % 2 else afull, range(6, 11))
        await b.ping_server(d)
        dropped = await self.wait_in_flight()
        a.expect_cut = True
        cut = (await self.control('POST', '/cut')).strip()
        await a.wait(lambda: a.cut,
                     'alice to see her connection cut', d)
        self.say('bob sent m06..m10 while the proxy black-holed alice\'s '
                 'connection (%d bytes from the server dropped); proxy cut %s '
                 'connection(s); alice\'s connection ended (%s)'
                 % (dropped, cut, a.cut_reason or 'no error given'))

        self.step = 'step 3 (messages while alice is away)'
        self.send_burst(b, lambda n: abare if n % 2 else afull, range(11, 16))
        await b.ping_server(d)
        bounced = [m for m, _ in b.messages if m['type'] == 'error']
        if bounced:
            raise CheckFailed('bob: messages to alice\'s waiting session '
                              'bounced: %s' % bounced[0])
        self.say('bob sent m11..m15 (odd ones to %s, even ones to %s), none '
                 'bounced' % (abare, afull))

        self.step = 'step 4 (resume)'
        a.xmpp.connect(address=(self.args.host, self.args.proxy_port))
        await a.wait(lambda: a.resumed is not None or a.sm_failed is not None
                     or a.sessions > 1,
                     'alice\'s <resumed/>', d)
        if a.resumed is None:
            raise CheckFailed('alice: resumption of %s refused: %s' % (
                el['id'], a.sm_failed if a.sm_failed is not None
                else 'a new session was bound instead'))
        want = [self.body(n) for n in range(1, 16)]
        await a.wait(lambda: set(want) <= set(a.bodies('m')),
                     lambda: 'all of m01..m15 (missing %s)' % [
                         w for w in want if w not in a.bodies('m')], d)
        self.say('alice resumed (the server acked h=%d of hers), still %s'
                 % (a.xmpp['xep_0198'].last_ack, a.jid.full))
        # A last message from bob: anything resent twice came before it.
        last = self.body(99)
        b.xmpp.send_message(mto=afull, mbody=last, mtype='chat')
        await a.wait(lambda: last in a.bodies('m'), 'm99', d)
        got = a.bodies('m')
        if got != want + [last]:
            raise CheckFailed('alice got %s, want each of m01..m15 once, in '
                              'order, then m99' % got)
        self.say('alice has m01..m15 each exactly once and in order')

        self.step = 'step 5 (after resumption)'
        after = 'resumed, from alice (%s)' % self.tag
        a.send_acked(b.jid.bare, after)
        await a.wait(lambda: a.acked_body(after),
                     'the server\'s <a/> acking alice\'s message', d)
        await b.wait(lambda: b.message_with(after), 'alice\'s message', d)
        await b.ping_server(d)
        n = sum(1 for m, _ in b.messages if m['body'] in (hello, after))
        if n != 2:
            raise CheckFailed('bob got alice\'s two messages %d times' % n)
        self.say('alice\'s message after resuming acked by the server; bob '
                 'got both of hers exactly once')
        await self.close()


# --------------------------------------------------------------------------
# carbons
# --------------------------------------------------------------------------
class CarbonPeer(Peer):
    """A Peer with the xep_0280 plugin that records its carbons."""

    def __init__(self, args, account, label):
        super().__init__(args, account, label)
        self.xmpp.register_plugin('xep_0030')
        self.xmpp.register_plugin('xep_0280')
        self.carbons = []  # (kind, forwarded message)
        self.xmpp.add_event_handler(
            'carbon_received',
            lambda m: self._carbon('received', m['carbon_received']))
        self.xmpp.add_event_handler(
            'carbon_sent', lambda m: self._carbon('sent', m['carbon_sent']))

    def _carbon(self, kind, inner):
        self.carbons.append((kind, inner))
        self.poke()

    def carbon(self, kind, body):
        return [m for k, m in self.carbons if k == kind and m['body'] == body]

    def direct(self, body):
        return [m for m, _ in self.messages if m['body'] == body]


class Carbons(Scenario):

    def msg(self, p, to, body, private=False):
        m = p.xmpp.make_message(mto=to, mbody=body, mtype='chat')
        if private:
            m.xml.append(ET.Element('{%s}private' % NS_CARBONS))
            m.xml.append(ET.Element('{%s}no-copy' % NS_HINTS))
        m.send()

    async def run(self):
        d = self.deadline
        a1 = self.peer('alice', 'alice 1', CarbonPeer)
        a2 = self.peer('alice', 'alice 2', CarbonPeer)
        b = self.peer('bob', 'bob', CarbonPeer)
        await asyncio.gather(a1.start(d), a2.start(d), b.start(d))
        for p in (a1, a2, b):
            await p.initial_presence(d)
        try:
            info = await a1.xmpp['xep_0030'].get_info(
                jid=self.args.domain, timeout=d.left('disco#info'))
        except (IqError, IqTimeout) as exc:
            raise CheckFailed('alice 1: disco#info of %s: %s'
                              % (self.args.domain, exc))
        if NS_CARBONS not in info['disco_info']['features']:
            raise CheckFailed('the server does not advertise %s in its '
                              'disco#info (features: %s)' % (
                                  NS_CARBONS,
                                  sorted(info['disco_info']['features'])))
        for p in (a1, a2):
            await p.answer(p.xmpp['xep_0280'].enable(
                timeout=d.left('carbons enable')), 'carbons enable')
        self.say('the server advertises %s; both of alice\'s resources (%s, '
                 '%s) enabled carbons' % (NS_CARBONS, a1.jid.resource,
                                          a2.jid.resource))
        t = self.tag

        self.step = 'step 1 (received carbon)'
        r = 'bob to alice 1 (%s)' % t
        self.msg(b, a1.jid.full, r)
        await a1.wait(lambda: a1.direct(r), 'bob\'s message', d)
        got = await a2.wait(lambda: a2.carbon('received', r),
                            'a received carbon of bob\'s message to alice 1',
                            d)
        inner = got[0]
        if inner['from'].full != b.jid.full or inner['to'].full != a1.jid.full:
            raise CheckFailed('alice 2: received carbon from=%s to=%s, want '
                              'from=%s to=%s' % (inner['from'], inner['to'],
                                                 b.jid.full, a1.jid.full))
        self.say('alice 1 got bob\'s message; alice 2 got a received carbon '
                 '(from %s to %s)' % (inner['from'], inner['to']))

        self.step = 'step 2 (sent carbon)'
        s = 'alice 1 to bob (%s)' % t
        self.msg(a1, b.jid.bare, s)
        await b.wait(lambda: b.direct(s), 'alice 1\'s message', d)
        got = await a2.wait(lambda: a2.carbon('sent', s),
                            'a sent carbon of alice 1\'s message', d)
        inner = got[0]
        if inner['from'].full != a1.jid.full or inner['to'].bare != b.jid.bare:
            raise CheckFailed('alice 2: sent carbon from=%s to=%s, want '
                              'from=%s to=%s' % (inner['from'], inner['to'],
                                                 a1.jid.full, b.jid.bare))
        self.say('bob got alice 1\'s message; alice 2 got a sent carbon (from '
                 '%s to %s)' % (inner['from'], inner['to']))

        self.step = 'step 3 (private messages are not copied)'
        ps, ms = 'private, alice 1 to bob (%s)' % t, 'marker 1 (%s)' % t
        self.msg(a1, b.jid.bare, ps, private=True)
        self.msg(a1, b.jid.bare, ms)
        await a2.wait(lambda: a2.carbon('sent', ms),
                      'a sent carbon of the marker after the private '
                      'message', d)
        await b.wait(lambda: b.direct(ps), 'the private message', d)
        pr, mr = 'private, bob to alice 1 (%s)' % t, 'marker 2 (%s)' % t
        self.msg(b, a1.jid.full, pr, private=True)
        self.msg(b, a1.jid.full, mr)
        await a2.wait(lambda: a2.carbon('received', mr),
                      'a received carbon of the marker after the private '
                      'message', d)
        await a1.wait(lambda: a1.direct(pr), 'the private message', d)
        if a2.carbon('sent', ps) or a2.carbon('received', pr):
            raise CheckFailed('alice 2 got a carbon of a message with '
                              '<private/> and <no-copy/>')
        self.say('no carbon of private messages, sent or received (markers '
                 'after them were copied)')

        self.step = 'step 4 (message to the bare JID)'
        bare = 'bob to alice\'s bare JID (%s)' % t
        mk = 'marker 3 (%s)' % t
        self.msg(b, a1.jid.bare, bare)
        self.msg(b, a1.jid.full, mk)
        await a1.wait(lambda: a1.direct(mk), 'the marker', d)
        await a2.wait(lambda: a2.carbon('received', mk), 'the marker\'s '
                      'received carbon', d)
        how = []
        for p in (a1, a2):
            n_direct = len(p.direct(bare))
            n_carbon = len(p.carbon('received', bare))
            if n_direct + n_carbon != 1:
                raise CheckFailed('%s got the message to the bare JID %d '
                                  'time(s) directly and %d as a carbon, want '
                                  'exactly once' % (p.label, n_direct,
                                                    n_carbon))
            how.append('%s %s' % (p.label, 'directly' if n_direct
                                  else 'as a carbon'))
        self.say('each resource got it exactly once: %s' % ', '.join(how))

        self.step = 'step 5 (disable)'
        await a2.answer(a2.xmpp['xep_0280'].disable(
            timeout=d.left('carbons disable')), 'carbons disable')
        off, mk = 'after disable (%s)' % t, 'marker 4 (%s)' % t
        self.msg(b, a1.jid.full, off)
        self.msg(b, a2.jid.full, mk)
        await a2.wait(lambda: a2.direct(mk), 'the marker', d)
        await a1.wait(lambda: a1.direct(off), 'bob\'s message', d)
        if a2.carbon('received', off):
            raise CheckFailed('alice 2 got a carbon after disabling carbons')
        if a1.carbon('sent', s) or a1.carbon('sent', ms):
            raise CheckFailed('alice 1 got a sent carbon of its own message')
        self.say('alice 2 disabled carbons and got no more; alice 1 never '
                 'got a carbon of its own messages')
        await self.close()


# --------------------------------------------------------------------------
# mam
# --------------------------------------------------------------------------
class MAMPeer(Peer):
    """A Peer with the xep_0313 and xep_0359 plugins."""

    def __init__(self, args, account, label):
        super().__init__(args, account, label)
        for plugin in ('xep_0030', 'xep_0059', 'xep_0297', 'xep_0313',
                       'xep_0359'):
            self.xmpp.register_plugin(plugin)


class MAM(Scenario):

    async def pages(self, a, with_jid, start, reverse):
        """The pages of alice's archive (the plugin's RSM iterator)."""
        out = []
        it = a.xmpp['xep_0313'].retrieve(
            with_jid=with_jid, start=start, reverse=reverse, iterator=True,
            rsm={'max': self.args.page})
        self.deadline.left('the MAM query')
        try:
            async for page in it:
                results = list(page['mam']['results'])
                fin = page['mam_fin']
                out.append((results, fin.xml.get('complete'),
                            fin['rsm']['count']))
                if len(out) > 2 + self.args.messages:
                    raise CheckFailed('alice: the MAM query does not end '
                                      '(%d pages)' % len(out))
                self.deadline.left('the MAM query, page %d' % len(out))
        except IqTimeout:
            raise CheckFailed('alice: a MAM page got no answer in time')
        return out

    def check_pages(self, pages, want, a, b, direction):
        """The results of pages in time order; fail unless they are want."""
        size = self.args.page
        for i, (results, _, _) in enumerate(pages):
            if len(results) > size:
                raise CheckFailed('%s page %d has %d results, more than '
                                  '<max>%d</max>' % (direction, i + 1,
                                                     len(results), size))
        nonempty = [p for p in pages if p[0]]
        if not nonempty:
            raise CheckFailed('%s query: no results at all' % direction)
        if nonempty[-1][1] not in ('true', '1'):
            raise CheckFailed('%s query: the page that reaches the end has '
                              'no <fin complete="true"/> (complete=%r; pages '
                              'of %s)' % (direction, nonempty[-1][1],
                                          [len(p[0]) for p in pages]))
        for results, complete, _ in nonempty[:-1]:
            if complete in ('true', '1'):
                raise CheckFailed('%s query: <fin complete="true"/> on a page '
                                  'before the end' % direction)
        ordered = nonempty[::-1] if direction == 'backward' else nonempty
        results = [r for p in ordered for r in p[0]]
        got = []
        for r in results:
            fwd = r['mam_result']['forwarded']
            inner = fwd['stanza']
            body = inner['body']
            if self.tag not in body:
                raise CheckFailed('%s query: a result that is not from this '
                                  'run: %s' % (direction, r))
            frm = inner['from'].bare
            want_from = a.jid.bare if body.startswith('alice') else b.jid.bare
            if frm != want_from:
                raise CheckFailed('%s query: %r archived from %s, want %s'
                                  % (direction, body, inner['from'],
                                     want_from))
            if not fwd['delay']['stamp']:
                raise CheckFailed('%s query: result without a <delay/> '
                                  'stamp: %s' % (direction, r))
            got.append((r['mam_result']['id'], body))
        bodies = [g[1] for g in got]
        if bodies != want:
            missing = [w for w in want if w not in bodies]
            doubled = sorted({x for x in bodies if bodies.count(x) > 1})
            raise CheckFailed('%s query: %d results, want %d in order '
                              '(missing %s, doubled %s; got %s)' % (
                                  direction, len(bodies), len(want), missing,
                                  doubled, bodies))
        return got

    async def run(self):
        d = self.deadline
        a = self.peer('alice', 'alice', MAMPeer)
        b = self.peer('bob', 'bob', MAMPeer)
        await asyncio.gather(a.start(d), b.start(d))
        start = (datetime.datetime.now(datetime.timezone.utc)
                 - datetime.timedelta(seconds=1))

        self.step = 'step 1 (exchange)'
        want = []
        for i in range(self.args.messages):
            # Two of three from bob, one from alice.
            if i % 3 == 2:
                src, dst, who = a, b, 'alice'
            else:
                src, dst, who = b, a, 'bob'
            body = '%s %03d (%s)' % (who, i, self.tag)
            src.xmpp.send_message(mto=dst.jid.full, mbody=body, mtype='chat')
            # One at a time: the archive's order is the order sent.
            await dst.wait(lambda: dst.message_with(body), repr(body), d)
            want.append(body)
        sids = {}
        for msg, _ in a.messages:
            if self.tag not in msg['body']:
                continue
            sid = [e for e in msg.xml.findall('{%s}stanza-id' % NS_SID)
                   if e.get('by') == a.jid.bare]
            if len(sid) != 1 or not sid[0].get('id'):
                raise CheckFailed('alice: %r came without one <stanza-id '
                                  'by="%s"/>: %s' % (msg['body'], a.jid.bare,
                                                     msg))
            sids[msg['body']] = sid[0].get('id')
        self.say('%d messages exchanged; each of the %d alice received has a '
                 '<stanza-id by="%s"/>' % (len(want), len(sids), a.jid.bare))

        self.step = 'step 2 (forward paging)'
        pages = await self.pages(a, b.jid.bare, start, reverse=False)
        fwd = self.check_pages(pages, want, a, b, 'forward')
        self.say('%d results in pages of %s, in order, complete at the end '
                 '(count=%s)' % (len(fwd), [len(p[0]) for p in pages],
                                 pages[0][2] or '-'))
        ids = [i for i, _ in fwd]
        if len(set(ids)) != len(ids) or not all(ids):
            raise CheckFailed('archive ids are missing or not unique: %s'
                              % ids)
        for rid, body in fwd:
            if body in sids and sids[body] != rid:
                raise CheckFailed('%r: archive id %s, but it was delivered '
                                  'with stanza-id %s' % (body, rid,
                                                         sids[body]))
        self.say('archive ids unique; each equals the stanza-id alice saw')

        self.step = 'step 3 (backward paging)'
        pages = await self.pages(a, b.jid.bare, start, reverse=True)
        back = self.check_pages(pages, want, a, b, 'backward')
        if back != fwd:
            raise CheckFailed('backward results differ from forward ones')
        self.say('%d results in pages of %s going back, the same as '
                 'forward, complete at the start' % (
                     len(back), [len(p[0]) for p in pages]))
        await self.close()


SCENARIOS = {'sm': SM, 'carbons': Carbons, 'mam': MAM}


def parse_args(argv):
    p = accounts_parser(
        'Check stream management, carbons or the message archive '
        'of an XMPP server with slixmpp; exit 0 only if every '
        'step worked.')
    p.add_argument('scenario', choices=sorted(SCENARIOS))
    p.add_argument('--proxy-port', type=int,
                   help='sm: the port of the proxy alice connects through')
    p.add_argument('--control', metavar='URL',
                   help='sm: the proxy\'s control server')
    p.add_argument('--messages', type=int, default=25,
                   help='mam: messages exchanged (default 25)')
    p.add_argument('--page', type=int, default=10,
                   help='mam: results per page (default 10)')
    args = p.parse_args(argv)
    if args.scenario == 'sm' and not (args.proxy_port and args.control):
        p.error('sm needs --proxy-port and --control')
    return args


def main(argv):
    args = parse_args(argv)
    return run_main(args, SCENARIOS[args.scenario](args))


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
