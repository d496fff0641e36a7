package upload

import (
	"mime"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"ottr.im/ottr/internal/randid"
)

// FuzzRequest feeds ParseRequest what a client may put in a slot
// request: a request it accepts has a name that is safe on disk, in a URL
// and in a header, a size that is not negative and a media type that
// parses; the name goes into a GET URL and comes back out of ParsePath as
// it was.
func FuzzRequest(f *testing.F) {
	for _, s := range [][3]string{
		{"photo.jpg", "23456", "image/jpeg"},
		{"très cool.jpg", "0", ""},
		{"../../etc/passwd", "1", "text/plain; charset=UTF-8"},
		{"a\u202egpj.exe", "1", "application/x-msdownload"},
		{"\x00\r\n", "99999999999999999999", "text/html; a=\"b\\\"c\""},
		{strings.Repeat("é", 200) + ".png", "1", "*/*"},
		{"a%2Fb", "-1", "image/svg+xml"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	id := randid.Token()
	f.Fuzz(func(t *testing.T, name, size, ctype string) {
		r, err := ParseRequest(name, size, ctype)
		if err != nil {
			return
		}
		if r.Size < 0 {
			t.Fatalf("size %d", r.Size)
		}
		n := r.Filename
		if n == "" || len(n) > MaxFilenameBytes || !utf8.ValidString(n) || n == "." || n == ".." || strings.ContainsAny(n, "/\\") {
			t.Fatalf("filename %q", n)
		}
		for _, c := range n {
			if unicode.IsControl(c) || unicode.Is(unicode.Cf, c) {
				t.Fatalf("filename %q has %U", n, c)
			}
		}
		if _, _, err := mime.ParseMediaType(r.ContentType); err != nil || len(r.ContentType) > maxContentType {
			t.Fatalf("content type %q: %v", r.ContentType, err)
		}
		gotID, gotName, ok := ParsePath(PathPrefix + id + "/" + url.PathEscape(n))
		if !ok || gotID != id || gotName != n {
			t.Fatalf("ParsePath of %q's URL = %q, %q, %v", n, gotID, gotName, ok)
		}
		for _, in := range []bool{true, false} {
			cd := contentDisposition(in, n)
			for i := 0; i < len(cd); i++ {
				if cd[i] < 0x20 || cd[i] >= 0x7f {
					t.Fatalf("Content-Disposition %q has byte %#x", cd, cd[i])
				}
			}
			if _, params, err := mime.ParseMediaType(cd); err != nil || params["filename"] != n {
				// mime decodes filename* (RFC 2231) into filename.
				t.Fatalf("Content-Disposition %q parses as %v, %v", cd, params, err)
			}
		}
	})
}

// FuzzPath feeds ParsePath any escaped path: what it accepts has a slot
// id of randid.Token's form and one file name without a slash, never a
// path that leaves the files' directory.
func FuzzPath(f *testing.F) {
	id := randid.Token()
	for _, s := range []string{
		PathPrefix + id + "/photo.jpg",
		PathPrefix + id + "/a%2F..%2F..%2Fsecret",
		PathPrefix + "../secret/x",
		PathPrefix + id + "/",
		PathPrefix + id + "/a/b",
		PathPrefix + strings.ToUpper(id) + "/x",
		PathPrefix + id + "/%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		gotID, name, ok := ParsePath(p)
		if !ok {
			return
		}
		if !isSlotID(gotID) || name == "" || strings.Contains(gotID, "/") {
			t.Fatalf("ParsePath(%q) = %q, %q", p, gotID, name)
		}
		if strings.ContainsAny(name, "/") && !strings.Contains(p[len(PathPrefix)+len(gotID)+1:], "%") {
			t.Fatalf("ParsePath(%q): a slash in %q that was not escaped", p, name)
		}
	})
}
