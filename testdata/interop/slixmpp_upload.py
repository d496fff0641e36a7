#!/usr/bin/python3
"""Interop check of an XMPP server's HTTP file upload (XEP-0363) with slixmpp.

Run it with /usr/bin/python3 (Debian's python3-slixmpp, whose xep_0363
plugin uploads with python3-aiohttp). Logins, the peers that record what
they receive and the waits come from slixmpp_login.py, slixmpp_pair.py and
slixmpp_mobile.py in this directory (imported, not copied). Accounts alice
and bob log in with PLAIN (--alice-password, --bob-password). The server's
certificate is trusted for HTTPS through the SSL_CERT_FILE environment
variable (aiohttp's default context reads it), set by the caller.

  step 1  alice's plugin finds the upload service on her domain (disco#items,
          then disco#info with identity store/file and the feature
          urn:xmpp:http:upload:0) and reads max-file-size from its form;
          it must be --max-size.
  step 2  a file one byte over that size: the plugin refuses it itself
          (FileTooBig); a slot request for it gets not-acceptable with
          <file-too-large/> and <max-file-size/>.
  step 3  alice uploads --size random bytes with upload_file (slot request,
          then an HTTPS PUT with the slot's headers); the GET URL is on the
          service's HTTP listener.
  step 4  alice sends bob the URL (body and XEP-0066 out-of-band data); bob
          downloads it over HTTPS: the same bytes, the Content-Type alice
          gave, X-Content-Type-Options nosniff.
  step 5  a second PUT to alice's slot is refused (the slot is single-use).

Every wait is on an event, bounded by --timeout for the whole run. Exit
status: 0 only if every step worked (a line per step on stdout, then "all
steps OK"); 1 when one failed ("FAIL: <step>: reason" on stderr; -v puts
slixmpp's debug log, with all XML, on stderr before it); 2 for a usage
error.

Example:
  SSL_CERT_FILE=data/tls/cert.pem /usr/bin/python3 slixmpp_upload.py \\
      --port 5222 --domain localhost --alice-password a --bob-password b
"""

import hashlib
import io
import os
import sys

# Imported for its side effects too: it exits with a clear FAIL line when
# slixmpp is missing.
import slixmpp_login  # noqa: F401
from slixmpp_login import CheckFailed
from slixmpp_mobile import Scenario
from slixmpp_pair import Peer, accounts_parser, run_main

from slixmpp.exceptions import IqError, IqTimeout

try:
    import aiohttp
    from slixmpp.plugins.xep_0363.http_upload import FileTooBig
except ImportError as exc:
    sys.stderr.write('FAIL: setup: python3-aiohttp is missing (%s)\n' % exc)
    sys.exit(1)

NS_UPLOAD = 'urn:xmpp:http:upload:0'


class UploadPeer(Peer):
    """A Peer with the plugins the upload needs."""

    def __init__(self, args, account, label):
        super().__init__(args, account, label)
        for plugin in ('xep_0030', 'xep_0066', 'xep_0128', 'xep_0363'):
            self.xmpp.register_plugin(plugin)


class Upload(Scenario):

    async def run(self):
        d, args = self.deadline, self.args
        a = self.peer('alice', 'alice', UploadPeer)
        b = self.peer('bob', 'bob', UploadPeer)
        await a.start(d)
        await b.start(d)
        await a.initial_presence(d)
        await b.initial_presence(d)
        up = a.xmpp['xep_0363']

        self.step = 'step 1 (service discovery)'
        # The plugin's own find_upload_service hands asyncio.wait coroutines,
        # which Python 3.11 refuses (slixmpp 1.8.3): its steps, done here
        # with the plugin's xep_0030 and its candidate test.
        disco = a.xmpp['xep_0030']
        info = None
        try:
            items = await disco.get_items(jid=args.domain, timeout=d.left('disco#items'))
            for item in items['disco_items']['items']:
                candidate = await disco.get_info(jid=item[0], timeout=d.left('disco#info'))
                identities = candidate['disco_info']['identities']
                if any(i[0] == 'store' and i[1] == 'file' for i in identities) and \
                        NS_UPLOAD in candidate['disco_info']['features']:
                    info = candidate
        except (IqError, IqTimeout) as exc:
            raise CheckFailed('disco of %s: %s' % (args.domain, exc))
        if info is None:
            raise CheckFailed('no upload service found on %s' % args.domain)
        service = info['from']
        up.upload_service = service
        for form in info['disco_info'].iterables:
            values = form['values']
            if values.get('FORM_TYPE') == [NS_UPLOAD]:
                up.max_file_size = int(values['max-file-size'])
        if up.max_file_size != args.max_size:
            raise CheckFailed('max-file-size %r, want %d' % (up.max_file_size, args.max_size))
        self.say('service %s, max-file-size %d' % (service, up.max_file_size))

        self.step = 'step 2 (too large)'
        try:
            await up.upload_file('big.bin', size=args.max_size + 1,
                                 input_file=io.BytesIO(b''), timeout=d.left('upload'))
            raise CheckFailed('the plugin uploaded a file over max-file-size')
        except FileTooBig:
            pass
        try:
            await up.request_slot(service, 'big.bin', args.max_size + 1,
                                  'application/octet-stream', timeout=d.left('slot'))
            raise CheckFailed('a slot for a file over max-file-size')
        except IqError as exc:
            err = exc.iq['error']
            too_large = exc.iq.xml.find('.//{%s}file-too-large/{%s}max-file-size' % (NS_UPLOAD, NS_UPLOAD))
            if err['condition'] != 'not-acceptable' or too_large is None or too_large.text != str(args.max_size):
                raise CheckFailed('the error for a file too large: %s' % exc.iq)
        self.say('refused by the plugin and by the server (not-acceptable, file-too-large)')

        self.step = 'step 3 (upload)'
        data = os.urandom(args.size)
        try:
            url = await up.upload_file('report 2026 (final).pdf', size=len(data),
                                       content_type='application/pdf',
                                       input_file=io.BytesIO(data), timeout=d.left('upload'))
        except Exception as exc:
            raise CheckFailed('upload_file: %s: %s' % (type(exc).__name__, exc))
        if not url.startswith('https://'):
            raise CheckFailed('GET URL %s is not https' % url)
        self.say('%d bytes uploaded, GET URL %s' % (len(data), url))

        self.step = 'step 4 (bob downloads)'
        msg = a.xmpp.make_message(mto=b.jid.bare, mbody=url, mtype='chat')
        msg['oob']['url'] = url
        msg.send()
        got, _ = await b.wait(lambda: b.message_with(url), 'the message with the URL', d)
        oob = got['oob']['url']
        if oob != url:
            raise CheckFailed('bob\'s message has the out-of-band URL %r, want %r' % (oob, url))
        async with aiohttp.ClientSession() as session:
            async with session.get(oob, timeout=d.left('download')) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise CheckFailed('GET %s: %d' % (oob, resp.status))
                ctype = resp.headers.get('Content-Type')
                nosniff = resp.headers.get('X-Content-Type-Options')
        if hashlib.sha256(body).digest() != hashlib.sha256(data).digest():
            raise CheckFailed('bob got %d bytes that are not what alice uploaded' % len(body))
        if ctype != 'application/pdf' or nosniff != 'nosniff':
            raise CheckFailed('headers: Content-Type %r, X-Content-Type-Options %r' % (ctype, nosniff))
        self.say('the same %d bytes, %s' % (len(body), ctype))

        self.step = 'step 5 (single use)'
        slot_iq = await up.request_slot(service, 'again.txt', 2, 'text/plain', timeout=d.left('slot'))
        put = slot_iq['http_upload_slot']['put']['url']
        async with aiohttp.ClientSession() as session:
            for want, what in ((201, 'first'), (409, 'second')):
                async with session.put(put, data=b'hi', headers={'Content-Type': 'text/plain'},
                                       timeout=d.left('PUT')) as resp:
                    if resp.status != want:
                        raise CheckFailed('%s PUT: %d, want %d' % (what, resp.status, want))
        self.say('a second PUT to a used slot: 409')
        await self.close()


def parse_args(argv):
    p = accounts_parser(
        'Check the HTTP file upload (XEP-0363) of an XMPP server '
        'with slixmpp; exit 0 only if every step worked.')
    p.add_argument('--max-size', type=int, default=10485760,
                   help='the max-file-size the service must announce')
    p.add_argument('--size', type=int, default=300000,
                   help='bytes alice uploads (default 300000)')
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    return run_main(args, Upload(args))


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
