package caps

import (
	"encoding/xml"

	"mellium.im/xmlstream"

	"ottr.im/ottr/element"
)

// Query returns the disco#info <query/> of info, as an entity answers it
// (XEP-0030 §3.1): its identities and features in the order given, then
// its extended forms (XEP-0128), each with its FORM_TYPE first; node, when
// not empty, is set on the query.
func (info Info) Query(node string) xml.TokenReader {
	var inner []xml.TokenReader
	for _, id := range info.Identities {
		attr := attrs("category", id.Category, "type", id.Type)
		if id.Lang != "" {
			attr = append(attr, xml.Attr{Name: xml.Name{Space: nsXML, Local: "lang"}, Value: id.Lang})
		}
		if id.Name != "" {
			attr = append(attr, attrs("name", id.Name)...)
		}
		inner = append(inner, xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: "identity"}, Attr: attr}))
	}
	for _, f := range info.Features {
		inner = append(inner, xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: "feature"}, Attr: attrs("var", f)}))
	}
	for _, form := range info.Forms {
		fields := []xml.TokenReader{field(Field{Var: "FORM_TYPE", Type: "hidden", Values: []string{form.Type}})}
		for _, f := range form.Fields {
			fields = append(fields, field(f))
		}
		inner = append(inner, xmlstream.Wrap(xmlstream.MultiReader(fields...),
			xml.StartElement{Name: xml.Name{Space: NSData, Local: "x"}, Attr: attrs("type", "result")}))
	}
	start := xml.StartElement{Name: xml.Name{Space: NSInfo, Local: "query"}}
	if node != "" {
		start.Attr = attrs("node", node)
	}
	return xmlstream.Wrap(xmlstream.MultiReader(inner...), start)
}

// nsXML is the namespace of xml:lang.
const nsXML = "http://www.w3.org/XML/1998/namespace"

// field is one data form field with its values.
func field(f Field) xml.TokenReader {
	var vs []xml.TokenReader
	for _, v := range f.Values {
		vs = append(vs, element.Text("value", v))
	}
	attr := attrs("var", f.Var)
	if f.Type != "" {
		attr = append(attr, attrs("type", f.Type)...)
	}
	return xmlstream.Wrap(xmlstream.MultiReader(vs...), xml.StartElement{Name: xml.Name{Local: "field"}, Attr: attr})
}

// attrs makes unnamespaced attributes of name, value pairs.
func attrs(pairs ...string) []xml.Attr {
	a := make([]xml.Attr, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		a = append(a, xml.Attr{Name: xml.Name{Local: pairs[i]}, Value: pairs[i+1]})
	}
	return a
}
