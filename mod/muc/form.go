package muc

import (
	"errors"
	"fmt"
	"strconv"
)

// dataForm is a XEP-0004 form as a client submits it.
type dataForm struct {
	Type   string      `xml:"type,attr"`
	Fields []formField `xml:"field"`
}

type formField struct {
	Var    string   `xml:"var,attr"`
	Values []string `xml:"value"`
}

// Bounds of the configuration.
const (
	maxNameBytes        = 256
	maxDescriptionBytes = 1024
	maxPasswordBytes    = 256
)

var errForm = errors.New("muc: bad configuration form")

// maxUsersOptions are the values the form offers for max users.
var maxUsersOptions = []int{10, 20, 30, 50, 100, 200, 500, 1000}

// applyForm returns cfg changed by a submitted muc#roomconfig form;
// maxOccupants and maxHistory are the service's bounds. Unknown fields
// are ignored (XEP-0004 §3.2 lets a form carry more than the service
// knows); a known field with a value it cannot take fails the whole form.
func applyForm(cfg roomConfig, f dataForm, maxOccupants, maxHistory int) (roomConfig, error) {
	var protected *bool
	for _, fl := range f.Fields {
		v := ""
		if len(fl.Values) > 0 {
			v = fl.Values[0]
		}
		boolean := func(dst *bool) error {
			switch v {
			case "1", "true":
				*dst = true
			case "0", "false", "":
				*dst = false
			default:
				return fmt.Errorf("%w: %s is not a boolean", errForm, fl.Var)
			}
			return nil
		}
		var err error
		switch fl.Var {
		case "FORM_TYPE":
			if v != nsRoomConfig {
				err = fmt.Errorf("%w: FORM_TYPE %q", errForm, v)
			}
		case "muc#roomconfig_roomname":
			if len(v) > maxNameBytes {
				err = fmt.Errorf("%w: room name over %d bytes", errForm, maxNameBytes)
			}
			cfg.Name = v
		case "muc#roomconfig_roomdesc":
			if len(v) > maxDescriptionBytes {
				err = fmt.Errorf("%w: description over %d bytes", errForm, maxDescriptionBytes)
			}
			cfg.Description = v
		case "muc#roomconfig_persistentroom":
			err = boolean(&cfg.Persistent)
		case "muc#roomconfig_publicroom":
			err = boolean(&cfg.Public)
		case "muc#roomconfig_membersonly":
			err = boolean(&cfg.MembersOnly)
		case "muc#roomconfig_moderatedroom":
			err = boolean(&cfg.Moderated)
		case "muc#roomconfig_changesubject":
			err = boolean(&cfg.ChangeSubject)
		case "muc#roomconfig_allowinvites":
			err = boolean(&cfg.AllowInvites)
		case "mam", "muc#roomconfig_enablearchiving":
			// ejabberd's and Prosody's names for the same switch.
			var on bool
			err = boolean(&on)
			cfg.NoArchive = !on
		case "muc#roomconfig_passwordprotectedroom":
			var p bool
			err = boolean(&p)
			protected = &p
		case "muc#roomconfig_roomsecret":
			if len(v) > maxPasswordBytes {
				err = fmt.Errorf("%w: password over %d bytes", errForm, maxPasswordBytes)
			}
			cfg.Password = v
		case "muc#roomconfig_whois":
			switch v {
			case "anyone":
				cfg.NonAnonymous = true
			case "moderators", "":
				cfg.NonAnonymous = false
			default:
				err = fmt.Errorf("%w: whois %q", errForm, v)
			}
		case "muc#roomconfig_maxusers":
			switch v {
			case "", "none", "0":
				cfg.MaxUsers = 0
			default:
				n, e := strconv.Atoi(v)
				if e != nil || n < 1 || n > maxOccupants {
					err = fmt.Errorf("%w: max users %q (1 to %d)", errForm, v, maxOccupants)
				}
				cfg.MaxUsers = n
			}
		case "muc#maxhistoryfetch", "muc#roomconfig_historylength":
			n, e := strconv.Atoi(v)
			if e != nil || n < 0 {
				err = fmt.Errorf("%w: history length %q", errForm, v)
			}
			cfg.HistoryLength = min(n, maxHistory)
		}
		if err != nil {
			return cfg, err
		}
	}
	if protected != nil && !*protected {
		cfg.Password = ""
	}
	if protected != nil && *protected && cfg.Password == "" {
		return cfg, fmt.Errorf("%w: a password-protected room needs a password", errForm)
	}
	return cfg, nil
}

// configForm writes the room's configuration form (XEP-0045 §10.2);
// archive says whether the service keeps room archives.
func configForm(b *builder, cfg roomConfig, maxOccupants, maxHistory int, archive bool) {
	b.open(nsData, "x", "type", "form")
	b.leaf(nsData, "title", "Configuration of the room")
	field := func(typ, v, label string, values ...string) {
		b.open(nsData, "field", "type", typ, "var", v, "label", label)
		for _, val := range values {
			b.leaf(nsData, "value", val)
		}
	}
	boolean := func(v, label string, on bool) {
		field("boolean", v, label, map[bool]string{true: "1", false: "0"}[on])
		b.close()
	}
	field("hidden", "FORM_TYPE", "", nsRoomConfig)
	b.close()
	field("text-single", "muc#roomconfig_roomname", "Name", cfg.Name)
	b.close()
	field("text-single", "muc#roomconfig_roomdesc", "Description", cfg.Description)
	b.close()
	boolean("muc#roomconfig_persistentroom", "Persistent: kept when the last occupant leaves", cfg.Persistent)
	boolean("muc#roomconfig_publicroom", "Public: listed by the service", cfg.Public)
	boolean("muc#roomconfig_membersonly", "Members only", cfg.MembersOnly)
	boolean("muc#roomconfig_moderatedroom", "Moderated: only participants may speak", cfg.Moderated)
	boolean("muc#roomconfig_changesubject", "Occupants may change the subject", cfg.ChangeSubject)
	boolean("muc#roomconfig_allowinvites", "Occupants may invite", cfg.AllowInvites)
	if archive {
		boolean("mam", "Archive the messages of the room when it is persistent (XEP-0313)", !cfg.NoArchive)
	}
	boolean("muc#roomconfig_passwordprotectedroom", "Password protected", cfg.Password != "")
	field("text-private", "muc#roomconfig_roomsecret", "Password", cfg.Password)
	b.close()
	whois := "moderators"
	if cfg.NonAnonymous {
		whois = "anyone"
	}
	field("list-single", "muc#roomconfig_whois", "Who may see real JIDs", whois)
	b.open(nsData, "option", "label", "Moderators").leaf(nsData, "value", "moderators").close()
	b.open(nsData, "option", "label", "Anyone").leaf(nsData, "value", "anyone").close()
	b.close()
	mu := "none"
	if cfg.MaxUsers > 0 {
		mu = strconv.Itoa(cfg.MaxUsers)
	}
	field("list-single", "muc#roomconfig_maxusers", "Most occupants", mu)
	b.open(nsData, "option", "label", "No limit but the service's").leaf(nsData, "value", "none").close()
	for _, n := range maxUsersOptions {
		if n <= maxOccupants {
			b.open(nsData, "option").leaf(nsData, "value", strconv.Itoa(n)).close()
		}
	}
	b.close()
	field("text-single", "muc#maxhistoryfetch", fmt.Sprintf("Messages of history kept (at most %d)", maxHistory), strconv.Itoa(cfg.HistoryLength))
	b.close()
	b.close()
}
