package upload

import (
	"errors"
	"mime"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxFilenameBytes bounds a file's name as kept: a longer one is cut,
// keeping its extension.
const MaxFilenameBytes = 255

// maxContentType bounds a media type with its parameters.
const maxContentType = 255

// defaultContentType is the type of a file whose request named none.
const defaultContentType = "application/octet-stream"

// Request is a slot request as the service takes it.
type Request struct {
	// Filename is the name to serve the file by: the client's, with path
	// separators and control and format characters replaced by '_', space
	// trimmed, at most MaxFilenameBytes.
	Filename string
	// Size is the file's exact length in bytes.
	Size int64
	// ContentType is the media type, lower case, with its parameters in
	// canonical form; application/octet-stream when the client named
	// none.
	ContentType string
}

// ParseRequest checks the attributes of a slot request (filename, size,
// content-type; any of them may be what a hostile client sends) and
// returns the request to serve, or an error saying what is wrong.
func ParseRequest(filename, size, contentType string) (Request, error) {
	var r Request
	if size == "" || strings.Trim(size, "0123456789") != "" {
		return r, errors.New("size must be a non-negative integer")
	}
	n, err := strconv.ParseInt(size, 10, 64)
	if err != nil {
		return r, errors.New("size is out of range")
	}
	r.Size = n
	if r.Filename, err = cleanFilename(filename); err != nil {
		return r, err
	}
	if r.ContentType, err = cleanContentType(contentType); err != nil {
		return r, err
	}
	return r, nil
}

// cleanFilename makes a client's file name safe to serve by.
func cleanFilename(name string) (string, error) {
	if !utf8.ValidString(name) {
		return "", errors.New("filename is not UTF-8")
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case r == '/' || r == '\\':
			return '_'
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError:
			// Control characters, and format characters such as the
			// right-to-left override that disguise an extension.
			return '_'
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if name == "" || name == "." || name == ".." {
		return "", errors.New("filename is missing or empty")
	}
	if len(name) > MaxFilenameBytes {
		ext := path.Ext(name)
		if len(ext) > 16 {
			ext = ""
		}
		name = truncateUTF8(name[:len(name)-len(ext)], MaxFilenameBytes-len(ext)) + ext
	}
	return name, nil
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// cleanContentType parses a media type and returns its canonical form.
func cleanContentType(ct string) (string, error) {
	if strings.TrimSpace(ct) == "" {
		return defaultContentType, nil
	}
	if len(ct) > maxContentType {
		return "", errors.New("content-type is too long")
	}
	typ, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", errors.New("content-type is not a media type")
	}
	major, minor, ok := strings.Cut(typ, "/")
	if !ok || major == "" || minor == "" || major == "*" || minor == "*" {
		return "", errors.New("content-type is not type/subtype")
	}
	out := mime.FormatMediaType(typ, params)
	if out == "" || len(out) > maxContentType {
		return "", errors.New("content-type is not a media type")
	}
	return out, nil
}

// sameMediaType reports whether the Content-Type of a PUT, header, is the
// slot's type want: the same type and subtype (parameters aside). A PUT
// without one matches a slot of the default type.
func sameMediaType(header, want string) bool {
	w, _, err := mime.ParseMediaType(want)
	if err != nil {
		return false
	}
	if strings.TrimSpace(header) == "" {
		return w == defaultContentType
	}
	h, _, err := mime.ParseMediaType(header)
	return err == nil && h == w
}

// inline reports whether a file of media type ct is shown in the browser
// rather than downloaded: images (but SVG, which runs scripts), audio,
// video and plain text, which nosniff keeps what they say they are.
func inline(ct string) bool {
	typ, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	major, minor, _ := strings.Cut(typ, "/")
	switch major {
	case "image":
		return !strings.Contains(minor, "svg")
	case "audio", "video":
		return true
	}
	return typ == "text/plain"
}

// contentDisposition is the Content-Disposition of a file named name:
// an ASCII filename with anything unsafe replaced, and the real one in
// RFC 8187's filename*.
func contentDisposition(inlined bool, name string) string {
	var b strings.Builder
	if inlined {
		b.WriteString("inline")
	} else {
		b.WriteString("attachment")
	}
	b.WriteString(`; filename="`)
	for _, r := range name {
		if r < 0x20 || r >= 0x7f || r == '"' || r == '\\' || r == '%' {
			r = '_'
		}
		b.WriteRune(r)
	}
	b.WriteString(`"; filename*=UTF-8''`)
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(name); i++ {
		c := name[i]
		if isAttrChar(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// isAttrChar reports whether c is an attr-char of RFC 8187.
func isAttrChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}
