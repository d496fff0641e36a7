package pep

import (
	"errors"
	"fmt"
	"strconv"

	"ottr.im/ottr/storage"
)

// Node configuration (XEP-0060 §16.4) as data forms: the configure and
// default forms, and publish-options preconditions (§7.1.5).

const (
	formConfig  = nsPubSub + "#node_config"
	formOptions = nsPubSub + "#publish-options"
)

// The options a node has, by their field var.
const (
	optAccess   = "pubsub#access_model"
	optMaxItems = "pubsub#max_items"
	optPersist  = "pubsub#persist_items"
	optSendLast = "pubsub#send_last_published_item"
)

// fixedOptions are options ottr does not let change: a form may name
// them only with the value they have.
var fixedOptions = map[string]string{
	"pubsub#deliver_notifications": "true",
	"pubsub#deliver_payloads":      "true",
	"pubsub#notify_retract":        "true",
	"pubsub#notify_delete":         "true",
	"pubsub#publish_model":         "publishers",
}

// errForm is a form or value ottr does not take.
var errForm = errors.New("pep: unacceptable form")

// form is a submitted data form: its FORM_TYPE and other fields.
type form struct {
	formType string
	fields   map[string][]string
	order    []string
}

// parseForm reads a jabber:x:data form; a field given twice, or one
// without a var, is an error.
func parseForm(x elem) (form, error) {
	f := form{fields: map[string][]string{}}
	if !x.is(nsData, "x") {
		return f, fmt.Errorf("%w: not a data form", errForm)
	}
	for _, field := range x.children() {
		if !field.is(nsData, "field") {
			continue
		}
		v := field.attr("var")
		if _, dup := f.fields[v]; dup || v == "" {
			return f, fmt.Errorf("%w: field %q without a var or twice", errForm, v)
		}
		values := []string{}
		for _, val := range field.children() {
			if val.is(nsData, "value") {
				values = append(values, val.text())
			}
		}
		if v == "FORM_TYPE" {
			if len(values) == 1 {
				f.formType = values[0]
			}
			continue
		}
		f.fields[v] = values
		f.order = append(f.order, v)
	}
	return f, nil
}

// parseBool reads an xs:boolean.
func parseBool(s string) (bool, bool) {
	switch s {
	case "1", "true":
		return true, true
	case "0", "false":
		return false, true
	}
	return false, false
}

// apply sets the options f names on n, checking each value; maxItems is
// the most items a node may keep (what "max" means).
func (f form) apply(n *storage.PEPNode, maxItems int) error {
	for _, v := range f.order {
		values := f.fields[v]
		if len(values) != 1 {
			return fmt.Errorf("%w: %s with %d values", errForm, v, len(values))
		}
		val := values[0]
		switch v {
		case optAccess:
			switch val {
			case "open", "presence", "whitelist":
				n.Access = val
			default:
				return fmt.Errorf("%w: access model %q", errForm, val)
			}
		case optMaxItems:
			if val == "max" {
				n.MaxItems = maxItems
				continue
			}
			k, err := strconv.Atoi(val)
			if err != nil || k < 1 || k > maxItems {
				return fmt.Errorf("%w: max_items %q (1 to %d)", errForm, val, maxItems)
			}
			n.MaxItems = k
		case optPersist:
			b, ok := parseBool(val)
			if !ok {
				return fmt.Errorf("%w: persist_items %q", errForm, val)
			}
			n.PersistItems = b
		case optSendLast:
			switch val {
			case "never", "on_sub", "on_sub_and_presence":
				n.SendLast = val
			default:
				return fmt.Errorf("%w: send_last_published_item %q", errForm, val)
			}
		case "pubsub#title", "pubsub#description", "pubsub#type":
			// Labels ottr does not keep.
		default:
			fixed, ok := fixedOptions[v]
			if !ok {
				return fmt.Errorf("%w: option %s", errForm, v)
			}
			if b, isBool := parseBool(val); (isBool && strconv.FormatBool(b) != fixed) || (!isBool && val != fixed) {
				return fmt.Errorf("%w: %s is %s here", errForm, v, fixed)
			}
		}
	}
	return nil
}

// configForm returns n's configuration as the fields of a form.
func configForm(n storage.PEPNode) []fieldValue {
	return []fieldValue{
		{"FORM_TYPE", "hidden", []string{formConfig}, nil},
		{optAccess, "list-single", []string{n.Access}, []string{"open", "presence", "whitelist"}},
		{optMaxItems, "text-single", []string{strconv.Itoa(n.MaxItems)}, nil},
		{optPersist, "boolean", []string{boolValue(n.PersistItems)}, nil},
		{optSendLast, "list-single", []string{n.SendLast}, []string{"never", "on_sub", "on_sub_and_presence"}},
		{"pubsub#deliver_notifications", "boolean", []string{"1"}, nil},
		{"pubsub#deliver_payloads", "boolean", []string{"1"}, nil},
		{"pubsub#notify_retract", "boolean", []string{"1"}, nil},
		{"pubsub#notify_delete", "boolean", []string{"1"}, nil},
		{"pubsub#publish_model", "list-single", []string{"publishers"}, []string{"publishers"}},
	}
}

func boolValue(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// fieldValue is one field of a form the module sends.
type fieldValue struct {
	v, typ  string
	values  []string
	options []string
}
