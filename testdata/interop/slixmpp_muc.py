#!/usr/bin/python3
"""Interop check of an XMPP server's multi-user chat (XEP-0045), with slixmpp.

Run it with /usr/bin/python3 (Debian's python3-slixmpp). Logins, the
peers and the waits come from slixmpp_pair.py and slixmpp_mobile.py in this
directory (imported, not copied). Accounts alice, bob and carol log in with PLAIN
(--alice-password, --bob-password, --carol-password) and, with slixmpp's
xep_0045 plugin:

  step 1  alice finds the MUC service (--service) in the server's
          disco#items and its disco#info says conference/text and the MUC
          feature.
  step 2  alice creates a room (join_muc_wait: her self-presence has the
          status codes 110 and 201, affiliation owner, role moderator),
          fetches the configuration form (get_room_config), sets a name
          and submits it (set_room_config).
  step 3  bob joins (join_muc_wait): his self-presence has 110 and role
          participant, alice is among the occupants, alice sees him come.
  step 4  alice and bob each send a groupchat message: both get both, from
          the sender's occupant JID.
  step 5  alice kicks bob (set_role none, with a reason): bob gets his
          unavailable presence with status codes 307 and 110, alice sees
          him go with 307.
  step 6  bob joins again, gets the history (the two messages, with
          delays), then leaves (leave_muc): alice sees him go.
  step 7  moderation (plugin xep_0425, XEP-0425 as slixmpp 1.8 speaks
          it): carol joins and says something; alice, a moderator, retracts
          it by its XEP-0359 stanza-id; carol gets the moderated_message
          event for that id, by alice.
  step 8  an iq between occupants (plugin xep_0092): carol asks
          room/alice for her software version; the room relays the
          request and alice's slixmpp answers it, from her occupant JID.

Every wait is on an event, bounded by --timeout for the whole run. Exit
status: 0 only if every step worked (a line per step on stdout, then "all
steps OK"); 1 when one failed ("FAIL: <step>: reason" on stderr; -v puts
slixmpp's debug log, with all XML, on stderr before it); 2 for a usage
error.

Example:
  /usr/bin/python3 slixmpp_muc.py --port 5222 --domain localhost \\
      --service conference.localhost --alice-password secret \\
      --bob-password secret --carol-password secret
"""

import asyncio
import sys

# Imported for its side effects too: it exits with a clear FAIL line when
# slixmpp is missing.
import slixmpp_login  # noqa: F401
from slixmpp_login import CheckFailed
from slixmpp_mobile import Scenario
from slixmpp_pair import Peer, accounts_parser, run_main

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout, PresenceError


class MUCPeer(Peer):
    """A Peer with the xep_0045 plugin that records groupchat messages and
    room presence."""

    def __init__(self, args, account, label):
        super().__init__(args, account, label)
        for plugin in ('xep_0004', 'xep_0030', 'xep_0045', 'xep_0359',
                       'xep_0425'):
            self.xmpp.register_plugin(plugin)
        # Answers version queries (step 8) with a name of its own.
        self.xmpp.register_plugin('xep_0092', pconfig={
            'software_name': 'interop %s' % label})
        self.room_presence = []
        self.room_messages = []
        self.xmpp.add_event_handler('groupchat_presence', self._on_room_presence)
        self.xmpp.add_event_handler('groupchat_message', self._on_room_message)
        self.moderated = []
        self.xmpp.add_event_handler('moderated_message', self._on_moderated)

    def _on_moderated(self, msg):
        self.moderated.append(msg)
        self.poke()

    def _on_room_presence(self, pres):
        self.room_presence.append(pres)
        self.poke()

    def _on_room_message(self, msg):
        self.room_messages.append(msg)
        self.poke()

    def presence_of(self, occupant, ptype, code=None):
        for p in self.room_presence:
            if p['from'].full != occupant or p['type'] != ptype:
                continue
            if code is None or code in p['muc']['status_codes']:
                return p
        return None

    def message(self, occupant, body):
        return [m for m in self.room_messages
                if m['from'].full == occupant and m['body'] == body]

    async def join(self, room, nick, deadline, **history):
        try:
            return await self.xmpp['xep_0045'].join_muc_wait(
                room, nick, timeout=deadline.left('joining %s' % room),
                **history)
        except PresenceError as exc:
            raise CheckFailed('%s: joining %s: error <%s/>' % (
                self.label, room, exc.presence['error']['condition']))
        except asyncio.TimeoutError:
            raise CheckFailed('%s: joining %s: no self-presence and subject '
                              'in time' % (self.label, room)) from None


class MUC(Scenario):

    async def run(self):
        d = self.deadline
        service = self.args.service
        room = 'interop-%s@%s' % (self.tag, service)
        a = self.peer('alice', 'alice', MUCPeer)
        b = self.peer('bob', 'bob', MUCPeer)
        await asyncio.gather(a.start(d), b.start(d))
        for p in (a, b):
            await p.initial_presence(d)

        self.step = 'step 1 (discovery)'
        try:
            items = await a.xmpp['xep_0030'].get_items(
                jid=self.args.domain, timeout=d.left('disco#items'))
            info = await a.xmpp['xep_0030'].get_info(
                jid=service, timeout=d.left('disco#info'))
        except (IqError, IqTimeout) as exc:
            raise CheckFailed('service discovery: %s' % exc)
        found = [i[0] for i in items['disco_items']['items']]
        if service not in found:
            raise CheckFailed('%s not in the disco#items of %s: %s'
                              % (service, self.args.domain, found))
        idents = [(i[0], i[1]) for i in info['disco_info']['identities']]
        features = info['disco_info']['features']
        if ('conference', 'text') not in idents or \
                'http://jabber.org/protocol/muc' not in features:
            raise CheckFailed('disco#info of %s: identities %s, features %s'
                              % (service, idents, sorted(features)))
        self.say('%s is listed by %s, conference/text with the MUC feature'
                 % (service, self.args.domain))

        self.step = 'step 2 (create and configure)'
        pres, _subject, _occ, _hist = await a.join(room, 'alice', d, maxstanzas=0)
        codes = pres['muc']['status_codes']
        if 110 not in codes or 201 not in codes:
            raise CheckFailed('alice\'s self-presence has status codes %s, '
                              'want 110 and 201' % sorted(codes))
        if pres['muc']['affiliation'] != 'owner' or pres['muc']['role'] != 'moderator':
            raise CheckFailed('alice is %s/%s, want owner/moderator' % (
                pres['muc']['affiliation'], pres['muc']['role']))
        muc = a.xmpp['xep_0045']
        try:
            form = await muc.get_room_config(room, timeout=d.left('config form'))
            fields = form.get_fields()
            if 'muc#roomconfig_roomname' not in fields:
                raise CheckFailed('the configuration form has no room name: %s'
                                  % sorted(fields))
            fields['muc#roomconfig_roomname']['value'] = 'Interop'
            await muc.set_room_config(room, form, timeout=d.left('configure'))
        except (IqError, IqTimeout) as exc:
            raise CheckFailed('configuring the room: %s' % exc)
        self.say('alice created %s (110, 201, owner, moderator) and submitted '
                 'the configuration form (%d fields)' % (room, len(fields)))

        self.step = 'step 3 (join)'
        pres, _subject, occupants, _hist = await b.join(room, 'bob', d, maxstanzas=0)
        if 110 not in pres['muc']['status_codes'] or pres['muc']['role'] != 'participant':
            raise CheckFailed('bob\'s self-presence: codes %s, role %s' % (
                sorted(pres['muc']['status_codes']), pres['muc']['role']))
        if not any(o['from'].full == room + '/alice' for o in occupants):
            raise CheckFailed('bob did not get alice\'s presence before his own')
        await a.wait(lambda: a.presence_of(room + '/bob', 'available'),
                     'bob\'s presence in the room', d)
        self.say('bob joined as a participant; alice saw him come')

        self.step = 'step 4 (messages)'
        one, two = 'hello from alice (%s)' % self.tag, 'hello from bob (%s)' % self.tag
        a.xmpp.send_message(mto=room, mbody=one, mtype='groupchat')
        for p in (a, b):
            await p.wait(lambda p=p: p.message(room + '/alice', one), 'alice\'s message', d)
        b.xmpp.send_message(mto=room, mbody=two, mtype='groupchat')
        for p in (a, b):
            await p.wait(lambda p=p: p.message(room + '/bob', two), 'bob\'s message', d)
        self.say('both got both messages from the occupant JIDs')

        self.step = 'step 5 (kick)'
        try:
            await muc.set_role(room, 'bob', 'none', reason='interop kick',
                               timeout=d.left('kick'))
        except (IqError, IqTimeout) as exc:
            raise CheckFailed('kicking bob: %s' % exc)
        got = await b.wait(lambda: b.presence_of(room + '/bob', 'unavailable', 307),
                           'bob\'s own unavailable presence with 307', d)
        if 110 not in got['muc']['status_codes']:
            raise CheckFailed('bob\'s kick presence lacks 110: %s'
                              % sorted(got['muc']['status_codes']))
        await a.wait(lambda: a.presence_of(room + '/bob', 'unavailable', 307),
                     'bob leaving with 307', d)
        self.say('alice kicked bob: both got his unavailable presence with 307')

        self.step = 'step 6 (history, leave)'
        b.room_presence.clear()
        a.room_presence.clear()
        _pres, _subject, _occ, hist = await b.join(room, 'bob', d, maxstanzas=10)
        bodies = [m['body'] for m in hist]
        if bodies != [one, two]:
            raise CheckFailed('history on join: %s, want %s' % (bodies, [one, two]))
        await a.wait(lambda: a.presence_of(room + '/bob', 'available'),
                     'bob back in the room', d)
        b.xmpp['xep_0045'].leave_muc(room, 'bob')
        await a.wait(lambda: a.presence_of(room + '/bob', 'unavailable'),
                     'bob leaving', d)
        self.say('bob came back with the two messages as history, then left')

        self.step = 'step 7 (moderation)'
        c = self.peer('carol', 'carol', MUCPeer)
        await c.start(d)
        await c.initial_presence(d)
        await c.join(room, 'carol', d, maxstanzas=0)
        spam = 'spam from carol (%s)' % self.tag
        c.xmpp.send_message(mto=room, mbody=spam, mtype='groupchat')
        got = await a.wait(lambda: a.message(room + '/carol', spam), 'carol\'s message', d)
        sid = got[0]['stanza_id']['id']
        if not sid or got[0]['stanza_id']['by'] != room:
            raise CheckFailed('carol\'s message has no stanza-id by the room: %s' % got[0])
        try:
            await a.xmpp['xep_0425'].moderate(slixmpp.JID(room), sid, 'interop moderation',
                                               timeout=d.left('moderate'))
        except (IqError, IqTimeout) as exc:
            raise CheckFailed('moderating carol\'s message: %s' % exc)
        m = await c.wait(lambda: [m for m in c.moderated if m['apply_to']['id'] == sid],
                         'the moderated_message event', d)
        by = m[0]['apply_to']['moderated']['by']
        if by != room + '/alice':
            raise CheckFailed('moderated by %r, want %s/alice' % (by, room))
        self.say('alice retracted carol\'s message %s; carol was told (by %s)' % (sid, by))

        self.step = 'step 8 (iq between occupants)'
        try:
            got = await c.xmpp['xep_0092'].get_version(
                slixmpp.JID(room + '/alice'), timeout=d.left('version of room/alice'))
        except (IqError, IqTimeout) as exc:
            raise CheckFailed('carol asking room/alice for her version: %s' % exc)
        name = got['software_version']['name']
        if got['from'].full != room + '/alice' or name != 'interop alice':
            raise CheckFailed('version answer from %s named %r, want from %s/alice '
                              'named \'interop alice\'' % (got['from'], name, room))
        self.say('carol asked room/alice for her software version: %r, relayed '
                 'both ways' % name)
        await self.close()


def parse_args(argv):
    p = accounts_parser(
        'Check the multi-user chat of an XMPP server with slixmpp; '
        'exit 0 only if every step worked.',
        users=('alice', 'bob', 'carol'))
    p.add_argument('--service', default=None,
                   help='the MUC service (default conference.DOMAIN)')
    args = p.parse_args(argv)
    if args.service is None:
        args.service = 'conference.' + args.domain
    return args


def main(argv):
    args = parse_args(argv)
    return run_main(args, MUC(args))


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
