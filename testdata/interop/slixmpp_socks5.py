#!/usr/bin/python3
"""A file sent between two slixmpp clients through the server's SOCKS5
bytestreams proxy (XEP-0065), with slixmpp's own plugin (xep_0065).

Run it with /usr/bin/python3 (Debian's python3-slixmpp). Logins, the peers
and the waits come from slixmpp_login.py, slixmpp_pair.py and
slixmpp_mobile.py in this directory (imported, not copied). Accounts alice and bob log in with PLAIN
(--alice-password, --bob-password) and do, in order:

  step 1  alice discovers the proxies of her server as the plugin does
          (disco#items of the domain, disco#info of each item for the
          identity proxy/bytestreams, the streamhost of each): there is
          one, with a host and a port.
  step 2  alice opens a bytestream to bob (the plugin's handshake: the
          offer with the proxy's streamhost; bob, who accepts streams,
          connects to the proxy with SOCKS5 and answers streamhost-used;
          alice connects and asks the proxy to activate the stream).
  step 3  alice writes --bytes random bytes and closes; bob receives
          exactly those bytes (the same length and SHA-256), then the end
          of the stream.
  step 4  bob asks the proxy to activate a stream in alice's name (a hash
          with bob as initiator): the proxy refuses it.

Every wait is on an event, bounded by --timeout for the whole run. Exit
status: 0 only if every step worked (a line per step on stdout, then "all
steps OK"); 1 when one failed ("FAIL: <step>: reason" on stderr; -v puts
slixmpp's debug log, with all XML, on stderr before it); 2 for a usage error.

Example:
  /usr/bin/python3 slixmpp_socks5.py --port 5222 --domain localhost \\
      --alice-password secret --bob-password secret
"""

import asyncio
import hashlib
import os
import secrets

# Imported for its side effects too: it exits with a clear FAIL line when
# slixmpp is missing.
import slixmpp_login  # noqa: F401
from slixmpp_login import CheckFailed
from slixmpp_mobile import Scenario
from slixmpp_pair import Peer, accounts_parser, run_main

from slixmpp.exceptions import IqError, IqTimeout


class S5BPeer(Peer):
    """A Peer with the xep_0065 plugin that accepts incoming streams and
    records the bytes and the end of its SOCKS5 connections."""

    def __init__(self, args, account, label):
        super().__init__(args, account, label)
        self.xmpp.register_plugin('xep_0030')
        self.xmpp.register_plugin('xep_0065', {'auto_accept': True})
        self.streams = []       # the connections others opened to us
        self.received = bytearray()
        self.closed = False
        self.xmpp.add_event_handler('socks5_stream', self._on_stream)
        self.xmpp.add_event_handler('socks5_data', self._on_data)
        self.xmpp.add_event_handler('socks5_closed', self._on_closed)

    def _on_stream(self, conn):
        self.streams.append(conn)
        self.poke()

    def _on_data(self, data):
        self.received += data
        self.poke()

    def _on_closed(self, _exc):
        self.closed = True
        self.poke()


class Transfer(Scenario):
    """The scenario: alice sends bob a file through the proxy."""

    async def run(self):
        d = self.deadline
        a = self.peer('alice', 'alice', cls=S5BPeer)
        b = self.peer('bob', 'bob', cls=S5BPeer)
        await asyncio.gather(a.start(d), b.start(d))
        await a.initial_presence(d)
        await b.initial_presence(d)

        self.step = 'step 1 (proxy discovery)'
        s5b = a.xmpp['xep_0065']
        try:
            proxies = await asyncio.wait_for(
                s5b.discover_proxies(timeout=d.left('discovery')),
                d.left('discovery'))
        except (IqError, IqTimeout, asyncio.TimeoutError) as exc:
            raise CheckFailed('alice: proxy discovery failed: %r' % exc)
        if len(proxies) != 1:
            raise CheckFailed('alice: %d proxies discovered (%s), want 1'
                              % (len(proxies), proxies))
        proxy, (host, port) = next(iter(proxies.items()))
        if not host or not int(port):
            raise CheckFailed('alice: the streamhost of %s has no address: '
                              '%r:%r' % (proxy, host, port))
        self.say('alice found the proxy %s at %s:%s' % (proxy, host, port))

        self.step = 'step 2 (bytestream through the proxy)'
        sid = secrets.token_hex(8)
        try:
            sock = await asyncio.wait_for(
                s5b.handshake(b.jid, sid=sid, timeout=d.left('handshake')),
                d.left('handshake'))
        except (IqError, IqTimeout, asyncio.TimeoutError) as exc:
            raise CheckFailed('alice: the handshake failed: %r' % exc)
        if sock is None:
            raise CheckFailed('alice: the handshake gave no stream (unknown '
                              'proxy in streamhost-used, or no connection)')
        await b.wait(lambda: b.streams, 'bob\'s stream', d)
        self.say('stream %s activated: bob connected first, then alice'
                 % sid)

        self.step = 'step 3 (the file)'
        data = os.urandom(self.args.bytes)
        for i in range(0, len(data), 16384):
            await sock.write(data[i:i + 16384])
        sock.transport.close()
        await b.wait(lambda: b.closed or len(b.received) > len(data),
                     lambda: 'the end of the stream (%d of %d bytes so far)'
                     % (len(b.received), len(data)), d)
        if bytes(b.received) != data:
            raise CheckFailed('bob received %d bytes (sha256 %s), alice sent '
                              '%d (sha256 %s)' % (
                                  len(b.received),
                                  hashlib.sha256(b.received).hexdigest(),
                                  len(data), hashlib.sha256(data).hexdigest()))
        self.say('bob received the %d bytes alice sent (sha256 %s), then the '
                 'end of the stream' % (len(data),
                                        hashlib.sha256(data).hexdigest()[:16]))

        self.step = 'step 4 (activation by someone else)'
        try:
            await b.xmpp['xep_0065'].activate(proxy, sid, a.jid,
                                              timeout=d.left('activation'))
        except IqError as exc:
            cond = exc.iq['error']['condition']
            if cond not in ('item-not-found', 'not-allowed', 'forbidden'):
                raise CheckFailed('bob\'s activation refused with <%s/>, '
                                  'want item-not-found' % cond)
            self.say('bob\'s activation refused: <%s/>' % cond)
        except IqTimeout:
            raise CheckFailed('bob\'s activation got no answer')
        else:
            raise CheckFailed('the proxy activated a stream for bob')

        await self.close()


def parse_args(argv):
    p = accounts_parser(
        'Send a file between two slixmpp clients through the '
        'server\'s SOCKS5 proxy (XEP-0065); exit 0 only if every '
        'step worked.')
    p.add_argument('--bytes', type=int, default=1 << 20,
                   help='size of the file (default 1 MiB)')
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    return run_main(args, Transfer(args))


if __name__ == '__main__':
    import sys
    sys.exit(main(sys.argv[1:]))
