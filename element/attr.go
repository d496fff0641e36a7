package element

import "encoding/xml"

// Attr returns the value of start's attribute local (one without a
// namespace, as the attributes XMPP payloads define are), "" when it has
// none.
func Attr(start xml.StartElement, local string) string {
	for _, a := range start.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}
