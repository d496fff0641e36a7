package muc

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"golang.org/x/text/secure/precis"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/element"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

// Affiliations, in rising order of privilege (outcast the lowest).
type affiliation int

const (
	affOutcast affiliation = iota - 1
	affNone
	affMember
	affAdmin
	affOwner
)

var affNames = map[affiliation]string{affOutcast: "outcast", affNone: "none", affMember: "member", affAdmin: "admin", affOwner: "owner"}

func (a affiliation) String() string { return affNames[a] }

func parseAffiliation(s string) (affiliation, bool) {
	for a, n := range affNames {
		if n == s {
			return a, true
		}
	}
	return 0, false
}

// Roles, in rising order.
type role int

const (
	roleNone role = iota
	roleVisitor
	roleParticipant
	roleModerator
)

var roleNames = map[role]string{roleNone: "none", roleVisitor: "visitor", roleParticipant: "participant", roleModerator: "moderator"}

func (r role) String() string { return roleNames[r] }

func parseRole(s string) (role, bool) {
	for r, n := range roleNames {
		if n == s {
			return r, true
		}
	}
	return 0, false
}

// roomConfig is what a room keeps of itself, stored as JSON for a
// persistent room.
type roomConfig struct {
	Name          string `json:"name,omitempty"`
	Description   string `json:"description,omitempty"`
	Persistent    bool   `json:"persistent,omitempty"`
	Public        bool   `json:"public,omitempty"`
	MembersOnly   bool   `json:"members_only,omitempty"`
	Moderated     bool   `json:"moderated,omitempty"`
	Password      string `json:"password,omitempty"`
	NonAnonymous  bool   `json:"non_anonymous,omitempty"` // whois = anyone
	MaxUsers      int    `json:"max_users,omitempty"`     // 0: the service's bound
	HistoryLength int    `json:"history_length"`
	ChangeSubject bool   `json:"change_subject,omitempty"`
	AllowInvites  bool   `json:"allow_invites,omitempty"`
	// NoArchive turns the archive of a persistent room off.
	NoArchive bool `json:"no_archive,omitempty"`
	// Creator is the bare JID that created the room (for
	// limits.muc_rooms_per_user).
	Creator string `json:"creator,omitempty"`
	// Secret keys the room's occupant ids (XEP-0421).
	Secret []byte `json:"secret"`
	// Subject, and the nick that set it.
	Subject     string `json:"subject,omitempty"`
	SubjectNick string `json:"subject_nick,omitempty"`
}

// room is one room, guarded by its service's mutex.
type room struct {
	jid          jid.JID // bare
	cfg          roomConfig
	affiliations map[string]affiliation // bare JID → affiliation (none is absent)
	occupants    map[string]*occupant   // nickKey(nick) → occupant
	bySession    map[router.Target]*occupant
	history      []histEntry
	historyBytes int
	// locked: created and not yet configured (XEP-0045 §10.1); only its
	// owners may enter.
	locked bool
	// vcard is the room's vCard (vcard.go).
	vcard roomVCard
}

// occupant is one nick in a room: a user, with one or more sessions.
type occupant struct {
	nick     string
	real     jid.JID // bare
	role     role
	sessions []*joined
}

// joined is one session of an occupant and its last presence (its
// children without the MUC ones).
type joined struct {
	t        router.Target
	presence *element.Stanza
}

// histEntry is one message of the history: as broadcast (from the
// occupant JID), and when.
type histEntry struct {
	st   *element.Stanza
	id   string // its stanza-id (XEP-0359)
	at   time.Time
	size int
}

func newRoom(j jid.JID, creator string, historyLen int) *room {
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	return &room{
		jid: j,
		cfg: roomConfig{
			Creator:       creator,
			Secret:        secret,
			HistoryLength: historyLen,
			AllowInvites:  true,
		},
		affiliations: make(map[string]affiliation),
		occupants:    make(map[string]*occupant),
		bySession:    make(map[router.Target]*occupant),
	}
}

// roomFromStorage rebuilds a persistent room.
func roomFromStorage(service string, sr storage.MUCRoom) (*room, error) {
	j, err := jid.New(sr.Name, service, "")
	if err != nil {
		return nil, fmt.Errorf("muc: stored room %q: %w", sr.Name, err)
	}
	r := newRoom(j, "", 0)
	if err := json.Unmarshal(sr.Config, &r.cfg); err != nil {
		return nil, fmt.Errorf("muc: stored room %s: %w", j, err)
	}
	for k, v := range sr.Affiliations {
		if a, ok := parseAffiliation(v); ok && a != affNone {
			r.affiliations[k] = a
		}
	}
	return r, nil
}

// stored returns what the store keeps of r.
func (r *room) stored() (storage.MUCRoom, error) {
	b, err := json.Marshal(r.cfg)
	if err != nil {
		return storage.MUCRoom{}, err
	}
	affs := make(map[string]string, len(r.affiliations))
	for k, a := range r.affiliations {
		affs[k] = a.String()
	}
	return storage.MUCRoom{Service: r.jid.Domainpart(), Name: r.jid.Localpart(), Config: b, Affiliations: affs}, nil
}

func (r *room) affiliation(bare jid.JID) affiliation {
	return r.affiliations[bare.String()]
}

// defaultRole is the role an occupant with affiliation a gets on entry.
func (r *room) defaultRole(a affiliation) role {
	switch {
	case a >= affAdmin:
		return roleModerator
	case a == affMember || !r.cfg.Moderated:
		return roleParticipant
	default:
		return roleVisitor
	}
}

// nickKey is what two nicknames are compared by: RFC 8266's Nickname
// profile (case folded, width and spaces mapped, NFKC), so that "Alice",
// "alice" and "Ａｌｉｃｅ" are one nick in a room and no occupant can pass
// for another with a look-alike. "" for a string that is no nickname.
func nickKey(nick string) string {
	k, err := precis.Nickname.CompareKey(nick)
	if err != nil {
		return ""
	}
	return k
}

// occupantJID returns room@service/nick.
func (r *room) occupantJID(nick string) jid.JID {
	j, err := r.jid.WithResource(nick)
	if err != nil {
		return r.jid
	}
	return j
}

// occupantID is the occupant's XEP-0421 id: stable for one user in one
// room, meaningless outside it.
func (r *room) occupantID(real jid.JID) string {
	mac := hmac.New(sha256.New, r.cfg.Secret)
	mac.Write([]byte(real.Bare().String()))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:18])
}

// owners counts the room's owners.
func (r *room) owners() int {
	n := 0
	for _, a := range r.affiliations {
		if a == affOwner {
			n++
		}
	}
	return n
}

// occupantsOf returns the occupant whose real bare JID is real, or nil.
func (r *room) occupantOf(real jid.JID) *occupant {
	for _, o := range r.occupants {
		if o.real.Equal(real) {
			return o
		}
	}
	return nil
}

// sees reports whether the occupant viewer sees real JIDs.
func (r *room) seesJIDs(viewer *occupant) bool {
	return r.cfg.NonAnonymous || viewer.role == roleModerator
}

// addHistory keeps st in the history within the room's and the
// service's bounds.
func (r *room) addHistory(st *element.Stanza, id string, at time.Time, maxCount, maxBytes int) {
	limit := min(r.cfg.HistoryLength, maxCount)
	if limit <= 0 {
		r.history, r.historyBytes = nil, 0
		return
	}
	size := len(st.AppendXML(nil))
	if size > maxBytes {
		return
	}
	r.history = append(r.history, histEntry{st: st, id: id, at: at, size: size})
	r.historyBytes += size
	drop := 0
	for len(r.history)-drop > limit || r.historyBytes > maxBytes {
		r.historyBytes -= r.history[drop].size
		drop++
	}
	if drop > 0 {
		r.history = append(r.history[:0:0], r.history[drop:]...)
	}
}
