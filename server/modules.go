package server

import (
	"cmp"
	"context"
	"encoding/xml"
	"fmt"
	"time"

	"ottr.im/ottr/config"
	"ottr.im/ottr/mod/blocking"
	"ottr.im/ottr/mod/carbons"
	"ottr.im/ottr/mod/csi"
	"ottr.im/ottr/mod/disco"
	"ottr.im/ottr/mod/entitytime"
	"ottr.im/ottr/mod/extdisco"
	"ottr.im/ottr/mod/last"
	"ottr.im/ottr/mod/mam"
	"ottr.im/ottr/mod/muc"
	"ottr.im/ottr/mod/offline"
	"ottr.im/ottr/mod/pep"
	"ottr.im/ottr/mod/ping"
	"ottr.im/ottr/mod/presence"
	"ottr.im/ottr/mod/private"
	"ottr.im/ottr/mod/proxy65"
	"ottr.im/ottr/mod/push"
	"ottr.im/ottr/mod/roster"
	"ottr.im/ottr/mod/upload"
	"ottr.im/ottr/mod/vcard"
	"ottr.im/ottr/mod/version"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage/sqlite"
)

// modules lists the modules a server loads, in this order (as CoreDNS's
// plugin.cfg does). Each entry hands one module the core, its own store
// (storage/sqlite satisfies every module's Store) and its part of the
// configuration. Adding a feature is a folder under mod/ with its
// Register, its Store interface, and one line here.
var modules = []struct {
	name string
	load func(l *loader) error
}{
	{"disco", func(l *loader) (err error) {
		l.disco, err = disco.Register(l.core, disco.Options{Contacts: l.contact})
		return err
	}},
	{"ping", func(l *loader) error { return ping.Register(l.core) }},
	{"version", func(l *loader) error {
		return version.Register(l.core, version.Options{Name: "ottr", Version: Version})
	}},
	{"entitytime", func(l *loader) error { return entitytime.Register(l.core, entitytime.Options{Now: l.now}) }},
	{"blocking", func(l *loader) (err error) {
		_, err = blocking.Register(l.core, l.store, blocking.Options{MaxItems: l.limits.BlockedItems})
		return err
	}},
	{"roster", func(l *loader) (err error) {
		_, err = roster.Register(l.core, l.metered, roster.Options{MaxItems: l.limits.RosterItems, MaxBytes: l.limits.RosterBytes})
		return err
	}},
	{"presence", func(l *loader) (err error) {
		l.presence, err = presence.Register(l.core, l.store, presence.Options{DirectedMax: l.limits.DirectedPresences})
		return err
	}},
	{"last", func(l *loader) error {
		return last.Register(l.core, l.store, last.Options{Started: l.now(), Now: l.now})
	}},
	{"offline", func(l *loader) (err error) {
		l.offline, err = offline.Register(l.core, l.metered, offline.Options{
			MaxMessages:    l.limits.OfflineMessages,
			MaxBytes:       l.limits.OfflineBytes,
			SendQueue:      l.limits.SendQueue,
			SendQueueBytes: l.limits.SendQueueBytes,
			Now:            l.now,
		})
		return err
	}},
	{"vcard", func(l *loader) error {
		return vcard.Register(l.core, l.store, vcard.Options{MaxBytes: l.limits.VCardBytes, Avatars: l.store})
	}},
	{"pep", func(l *loader) (err error) {
		l.pep, err = pep.Register(l.core, l.store, pep.Options{
			MaxNodes:     l.limits.PEPNodes,
			MaxItems:     l.limits.PEPItems,
			MaxItemBytes: min(l.limits.PEPItemBytes, l.limits.MaxStanzaBytes),
			MaxBytes:     int64(l.limits.PEPBytes),
			// An items result within the send queue's half, as MAM's pages.
			MaxResultBytes: min(l.limits.SendQueueBytes/2, l.limits.MaxStanzaBytes),
			Now:            l.now,
		})
		return err
	}},
	{"private", func(l *loader) error {
		return private.Register(l.core, l.store, private.Options{
			MaxBytes:      l.limits.PrivateBytes,
			MaxDocuments:  l.limits.PrivateDocuments,
			MaxTotalBytes: l.limits.PrivateTotalBytes,
			// XEP-0411: XEP-0048's bookmarks are a view of XEP-0402's.
			Views: map[xml.Name]private.View{{Space: "storage:bookmarks", Local: "storage"}: l.pep.Bookmarks()},
		})
	}},
	{"push", func(l *loader) (err error) {
		_, err = push.Register(l.core, l.store, push.Options{
			MaxRegistrations: l.limits.PushRegistrations,
			Interval:         l.limits.PushInterval.Duration,
		})
		return err
	}},
	{"mam", func(l *loader) error {
		if l.limits.ArchiveMessages == 0 {
			return nil // archive_messages = 0: no archive
		}
		var err error
		l.mam, err = mam.Register(l.core, l.metered, mam.Options{
			MaxMessages:    l.limits.ArchiveMessages,
			MaxBytes:       int64(l.limits.ArchiveBytes),
			Retention:      l.limits.ArchiveRetention.Duration,
			MaxPage:        l.limits.ArchivePageSize,
			SendQueue:      l.limits.SendQueue,
			SendQueueBytes: l.limits.SendQueueBytes,
			Now:            l.now,
		})
		return err
	}},
	{"carbons", func(l *loader) (err error) {
		l.carbons, err = carbons.Register(l.core)
		return err
	}},
	{"csi", func(l *loader) (err error) {
		l.csi, err = csi.Register(l.core, csi.Options{})
		return err
	}},
	{"muc", func(l *loader) (err error) {
		l.muc, err = muc.Register(context.Background(), l.core, l.store, muc.Options{
			Services:        l.mucDomains,
			MaxRooms:        l.limits.MUCRooms,
			MaxRoomsPerUser: l.limits.MUCRoomsPerUser,
			MaxOccupants:    l.limits.MUCOccupants,
			MaxHistory:      cmp.Or(l.limits.MUCHistoryMessages, -1), // 0 keeps none
			MaxHistoryBytes: l.limits.MUCHistoryBytes,
			Rate:            float64(l.limits.MUCStanzaRate.N) / l.limits.MUCStanzaRate.Per.Seconds(),
			RoomsPerSession: l.limits.DirectedPresences,
			// Persistent rooms keep an archive within a user's bounds.
			ArchiveMessages:  l.limits.ArchiveMessages,
			ArchiveBytes:     int64(l.limits.ArchiveBytes),
			ArchiveRetention: l.limits.ArchiveRetention.Duration,
			ArchivePage:      l.limits.ArchivePageSize,
			SendQueueBytes:   l.limits.SendQueueBytes,
			MaxVCardBytes:    l.limits.VCardBytes, // a room's vCard, as a user's
			Now:              l.now,
		})
		return err
	}},
	{"upload", func(l *loader) (err error) {
		if len(l.uploadOpts.Services) == 0 {
			return nil // no [http] listener, or every host's upload = ""
		}
		l.uploadOpts.BaseURL = func(host string) string { return l.uploadBase(host) }
		l.upload, err = upload.Register(l.core, l.store, l.uploadOpts)
		return err
	}},
	{"proxy65", func(l *loader) (err error) {
		if len(l.proxy65Opts.Domains) == 0 {
			return nil // no [proxy65] listener, or every host's proxy65 = ""
		}
		l.proxy65, err = proxy65.Register(l.core, l.proxy65Opts)
		return err
	}},
	{"extdisco", func(l *loader) error { return extdisco.Register(l.core, l.extdiscoOpts) }},
}

// loader is what the module list's entries are given, and what the
// server keeps of the modules it talks to.
type loader struct {
	core   *router.Router
	store  *sqlite.Store
	limits config.Limits
	now    func() time.Time
	// contact are the XEP-0157 addresses ([contact]).
	contact map[string][]string

	// metered is store with the writes and reads of the message path
	// counted and timed (metrics), for the modules on that path.
	metered meteredStore

	disco    *disco.Module    // the server's own caps, for the stream features
	presence *presence.Module // for DirectedPresences
	offline  *offline.Module  // waited for at shutdown
	mam      *mam.Module      // closed at shutdown (nil with archive_messages = 0)
	csi      *csi.Module      // told by the c2s elements <active/> and <inactive/>
	pep      *pep.Module      // serves XEP-0048 bookmarks for private

	// proxy65 is the SOCKS5 proxy (nil when off), whose listener the
	// server serves; its options and the external services' come from
	// the configuration.
	proxy65      *proxy65.Module
	proxy65Opts  proxy65.Options
	extdiscoOpts extdisco.Options
	// mucDomains are the group chat services (XEP-0045), one per host
	// unless its muc = ""; muc is their module (for tests).
	mucDomains []string
	muc        *muc.Module
	carbons    *carbons.Module // enabled inline by Bind2 (XEP-0386)

	// upload is the HTTP upload service (nil when off), its options from
	// the configuration; uploadBase is set by the server once it exists
	// (the slot URLs need the HTTP listeners' ports).
	upload     *upload.Module
	uploadOpts upload.Options
	uploadBase func(host string) string
}

// load registers every module of the list with the core, in order.
func (l *loader) load() error {
	for _, m := range modules {
		if err := m.load(l); err != nil {
			return fmt.Errorf("server: module %s: %w", m.name, err)
		}
	}
	return nil
}

// mucDomains returns the domains of the hosts' group chat services.
func mucDomains(cfg *config.Config) []string {
	var out []string
	for _, h := range cfg.Hosts {
		if d := h.MUCDomain(); d != "" {
			out = append(out, d)
		}
	}
	return out
}
