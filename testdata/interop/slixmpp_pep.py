#!/usr/bin/python3
"""Interop checks of personal eventing (XEP-0163) and user avatars (XEP-0084)
on an XMPP server, with slixmpp's plugins xep_0163, xep_0084 and xep_0118.

Run it with /usr/bin/python3 (Debian's python3-slixmpp). Logins, the peers
that record what they receive, the waits and the subscription handshake come
from slixmpp_login.py, slixmpp_pair.py and slixmpp_mobile.py in this
directory (imported, not copied). Accounts alice and bob log in with PLAIN
(--alice-password, --bob-password) and do, in order:

  setup   both fetch their rosters and send initial presence with their
          XEP-0115 capabilities (plugin xep_0115), which name
          urn:xmpp:avatar:metadata+notify and
          http://jabber.org/protocol/tune+notify (the plugins' interests);
          alice and bob subscribe to each other.
  step 1  alice publishes an avatar (publish_avatar: its data, item id the
          SHA-1 of the bytes) and its metadata (publish_avatar_metadata);
          bob receives the metadata event from alice (avatar_metadata_publish)
          with the id, bytes and type, and fetches the data
          (retrieve_avatar): the same bytes.
  step 2  alice publishes her tune (xep_0118, a PEP node through xep_0163);
          bob receives the tune event; bob reads alice's tune node with
          xep_0060 get_items and finds the item; alice's disco#info has the
          identity pubsub/pep.
  step 3  a second resource of bob logs in and, once it sent presence with
          its capabilities, receives alice's last avatar metadata with an
          XEP-0203 delay stamp.

Every wait is on an event, bounded by --timeout for the whole run. Exit
status: 0 only if every step worked (a line per step on stdout, then "all
steps OK"); 1 when one failed ("FAIL: <step>: reason" on stderr; -v puts
slixmpp's debug log, with all XML, on stderr before it); 2 for a usage error.

Example:
  /usr/bin/python3 slixmpp_pep.py --port 5222 --domain localhost \\
      --alice-password secret --bob-password secret
"""

import asyncio
import hashlib
import secrets
import sys

import slixmpp_login  # noqa: F401  (a clear FAIL line without slixmpp)
from slixmpp_login import CheckFailed
from slixmpp_mobile import Scenario
from slixmpp_pair import Pair, Peer, accounts_parser, run_main

from slixmpp.exceptions import IqError, IqTimeout

NS_META = 'urn:xmpp:avatar:metadata'
NS_TUNE = 'http://jabber.org/protocol/tune'
NS_DELAY = 'urn:xmpp:delay'


class PEPPeer(Peer):
    """A Peer with slixmpp's PEP plugins that records PEP events."""

    def __init__(self, args, account, label):
        super().__init__(args, account, label)
        xmpp = self.xmpp
        for plugin in ('xep_0030', 'xep_0060', 'xep_0115', 'xep_0163',
                       'xep_0084', 'xep_0118'):
            xmpp.register_plugin(plugin)
        self.events = []  # (kind, message)
        for kind in ('avatar_metadata_publish', 'user_tune_publish'):
            xmpp.add_event_handler(kind, lambda msg, kind=kind:
                                   self._on_event(kind, msg))

    def _on_event(self, kind, msg):
        self.events.append((kind, msg))
        self.poke()

    def event(self, kind, frm, item_id=None):
        for k, msg in self.events:
            item = msg['pubsub_event']['items']['item']
            if k == kind and msg['from'].bare == frm and (
                    item_id is None or item['id'] == item_id):
                return msg
        return None

    async def caps_presence(self, deadline):
        """Initial presence once the capabilities name the plugins'
        interests (xep_0163 updates them asynchronously at bind)."""
        caps = self.xmpp['xep_0115']
        for _ in range(100):
            info = await caps.get_caps(jid=self.jid)
            feats = set(info['features']) if info else set()
            if {NS_META + '+notify', NS_TUNE + '+notify'} <= feats:
                break
            await asyncio.sleep(0.05)
        else:
            raise CheckFailed('%s: the capabilities never named the +notify '
                              'interests' % self.label)
        await self.initial_presence(deadline)


class PEP(Scenario):
    GROUP = Pair.GROUP

    # The subscription handshake of slixmpp_pair.py.
    subscribe = Pair.subscribe

    async def run(self):
        d = self.deadline
        a = self.peer('alice', 'alice', PEPPeer)
        b = self.peer('bob', 'bob', PEPPeer)
        await asyncio.gather(a.start(d), b.start(d))
        for p in (a, b):
            await p.roster_get(d)
            await p.caps_presence(d)
        await self.subscribe(a, b)
        abare = a.jid.bare

        self.step = 'step 1 (avatar)'
        data = b'\x89PNG ottr interop ' + self.tag.encode() + secrets.token_bytes(32)
        avatar_id = hashlib.sha1(data).hexdigest()
        await a.answer(a.xmpp['xep_0084'].publish_avatar(
            data, timeout=d.left('publish avatar')), 'publish avatar data')
        await a.answer(a.xmpp['xep_0084'].publish_avatar_metadata(
            {'id': avatar_id, 'type': 'image/png', 'bytes': str(len(data)),
             'height': '1', 'width': '1'},
            timeout=d.left('publish metadata')), 'publish avatar metadata')
        msg = await b.wait(lambda: b.event('avatar_metadata_publish', abare,
                                           avatar_id),
                           'the avatar metadata event from %s' % abare, d)
        info = msg['pubsub_event']['items']['item']['avatar_metadata']['items']
        if not info or info[0]['id'] != avatar_id or \
                int(info[0]['bytes']) != len(data) or info[0]['type'] != 'image/png':
            raise CheckFailed('bob: metadata event %s' % msg)
        self.say('bob got the metadata event (id %s, %d bytes)' % (
            avatar_id[:12], len(data)))
        res = await b.answer(b.xmpp['xep_0084'].retrieve_avatar(
            abare, avatar_id, timeout=d.left('retrieve avatar')),
            'retrieve avatar')
        got = res['pubsub']['items']['item']['avatar_data']['value']
        if got != data:
            raise CheckFailed('bob: retrieved %d bytes, not the %d published'
                              % (len(got), len(data)))
        self.say('bob retrieved the avatar data: the same %d bytes' % len(got))

        self.step = 'step 2 (tune)'
        title = 'Roundabout (%s)' % self.tag
        await a.answer(a.xmpp['xep_0118'].publish_tune(
            artist='Yes', title=title, timeout=d.left('publish tune')),
            'publish tune')
        msg = await b.wait(lambda: b.event('user_tune_publish', abare),
                           'the tune event from %s' % abare, d)
        if msg['pubsub_event']['items']['item']['tune']['title'] != title:
            raise CheckFailed('bob: tune event %s' % msg)
        res = await b.answer(b.xmpp['xep_0060'].get_items(
            abare, NS_TUNE, timeout=d.left('get items')), 'get tune items')
        items = list(res['pubsub']['items'])
        if len(items) != 1 or title not in str(items[0]):
            raise CheckFailed('bob: items of %s: %s' % (NS_TUNE, res))
        try:
            disco = await b.xmpp['xep_0030'].get_info(
                jid=abare, timeout=d.left('disco#info'))
        except (IqError, IqTimeout) as exc:
            raise CheckFailed('bob: disco#info of %s: %s' % (abare, exc))
        if ('pubsub', 'pep', None, None) not in disco['disco_info']['identities']:
            raise CheckFailed('%s has no pubsub/pep identity: %s' % (
                abare, disco['disco_info']['identities']))
        self.say('bob got the tune event and read the item with get_items; '
                 '%s has the identity pubsub/pep' % abare)

        self.step = 'step 3 (last item)'
        b2 = self.peer('bob', 'bob 2', PEPPeer)
        await b2.start(d)
        await b2.caps_presence(d)
        msg = await b2.wait(lambda: b2.event('avatar_metadata_publish', abare,
                                             avatar_id),
                            'alice\'s last avatar metadata', d)
        if msg.xml.find('{%s}delay' % NS_DELAY) is None:
            raise CheckFailed('bob 2: the last item came without a delay '
                              'stamp: %s' % msg)
        self.say('bob\'s second resource got alice\'s last avatar metadata, '
                 'with a delay stamp')
        await self.close()


def parse_args(argv):
    p = accounts_parser(
        'Check PEP and avatars of an XMPP server with slixmpp; '
        'exit 0 only if every step worked.')
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    return run_main(args, PEP(args))


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
