package server

import (
	"context"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

// An account is deleted by `ottr user del`, another process than the
// server: storage removes everything the account holds, downgrades the
// entries others have for it and records the deletion in the same
// transaction. The server polls for recorded deletions and, for each,
// ends the account's sessions and tells the affected contacts who are
// online, as a server-side unsubscribe would (security review #9).

// deletionPoll is how often the server looks for deleted accounts.
const deletionPoll = time.Second

// Bounds of one poll's work.
const (
	// maxDeletionsPerPoll is the most deletions read at once.
	maxDeletionsPerPoll = 16
	// deletedContactsPage is how many affected contacts are read at once.
	deletedContactsPage = 500
	// unbindWait is how long the sessions of a deleted account have to
	// end before what they wrote meanwhile is purged.
	unbindWait = 5 * time.Second
)

// AccountDeletionStore is what the server reads of account deletions
// (storage/sqlite satisfies it).
type AccountDeletionStore interface {
	// LastAccountDeletion returns the Seq of the latest deletion, 0 for
	// none.
	LastAccountDeletion(ctx context.Context) (int64, error)
	// AccountDeletions returns at most max deletions after Seq after,
	// oldest first.
	AccountDeletions(ctx context.Context, after int64, max int) ([]storage.AccountDeletion, error)
	// DeletedContacts returns at most max of the users whose roster held
	// the account of deletion seq, after (afterHost, afterUser).
	DeletedContacts(ctx context.Context, seq int64, afterHost, afterUser string, max int) ([]storage.DeletedContact, error)
	// PurgeDeleted removes what is stored for an account without a row
	// and reports whether it did.
	PurgeDeleted(ctx context.Context, host, username string) (bool, error)
	// MarkDeletionDone records that deletion seq was acted on, which lets
	// the account be created again (storage refuses it while a deletion
	// is pending: storage.ErrDeletionPending).
	MarkDeletionDone(ctx context.Context, seq int64) error
	// SettleDeletions purges and marks done the deletions up to Seq
	// through not done yet, as when no server has sessions.
	SettleDeletions(ctx context.Context, through int64) (int, error)
}

// deletionLoop acts on the deletions recorded after last, polling every
// deletionPoll until the server shuts down.
func (s *Server) deletionLoop(last int64) {
	defer s.wg.Done()
	// The deletions before this server started have no sessions here:
	// a server that stopped before acting on them left them pending.
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	if n, err := s.store.SettleDeletions(ctx, last); err != nil {
		s.logger.Error("settling the account deletions made before the start failed", "err", err)
	} else if n > 0 {
		s.logger.Info("settled account deletions made before the start", "count", n)
	}
	cancel()
	t := time.NewTicker(deletionPoll)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			last = s.pollDeletions(s.ctx, s.store, last)
		case done := <-s.pollNow:
			last = s.pollDeletions(s.ctx, s.store, last)
			close(done)
		}
	}
}

// ActOnDeletions acts at once on the account deletions recorded so far
// by another process, as the next poll would: when it returns, the
// sessions of the deleted accounts are ended and a login of one goes to
// storage (which refuses it until the deletion is done). "ottr user del"
// calls it through the admin socket, so that the account is gone for the
// server when the command returns, not up to a poll later.
func (s *Server) ActOnDeletions(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case s.pollNow <- done:
	case <-ctx.Done():
		return fmt.Errorf("server: act on account deletions: %w", ctx.Err())
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("server: act on account deletions: %w", ctx.Err())
	}
}

// pollDeletions acts on the account deletions recorded after last (at
// most maxDeletionsPerPoll of them) and returns the Seq of the last one
// it handled. A storage failure is logged and retried at the next poll.
func (s *Server) pollDeletions(ctx context.Context, ds AccountDeletionStore, last int64) int64 {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	dels, err := ds.AccountDeletions(qctx, last, maxDeletionsPerPoll)
	cancel()
	if err != nil {
		s.logger.Error("reading account deletions failed", "err", err)
		return last
	}
	for _, d := range dels {
		s.accountDeleted(ctx, ds, d)
		last = d.Seq
	}
	return last
}

// accountDeleted ends the sessions of a deleted account with
// <not-authorized/> (as XEP-0077 does for a cancelled registration),
// tells its online contacts as a server-side unsubscribe would (the
// core's AccountDeleted event, once per affected contact: the roster
// module pushes their downgraded entry and sends unsubscribe/unsubscribed
// and unavailable presence), and, once the sessions are gone, removes
// what they wrote while they were ending. Then it marks the deletion
// done, which lets the account be created again: not before, or the new
// account would get what the old sessions wrote (security review #9).
func (s *Server) accountDeleted(ctx context.Context, ds AccountDeletionStore, d storage.AccountDeletion) {
	core := s.router
	user, err := jid.New(d.Username, d.Host, "")
	if err != nil || !core.Serves(user.Domainpart()) {
		s.markDeletionDone(ctx, ds, d)
		return
	}
	bare := user.String()
	s.logger.Info("account deleted: ending its sessions", "jid", bare)
	core.ForgetAccount(ctx, user)

	sessions := core.Resources(user)
	var from []jid.JID
	for _, t := range core.Available(user, false) {
		from = append(from, t.JID())
	}

	afterHost, afterUser := "", ""
	for {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		page, err := ds.DeletedContacts(qctx, d.Seq, afterHost, afterUser, deletedContactsPage)
		cancel()
		if err != nil {
			s.logger.Error("reading the contacts of a deleted account failed", "jid", bare, "err", err)
			break
		}
		for _, c := range page {
			contact, err := jid.New(c.Username, c.Host, "")
			if err != nil || !core.Serves(contact.Domainpart()) {
				continue
			}
			core.Fire(router.AccountDeleted, &router.EventData{Ctx: ctx, To: user, Deleted: &router.DeletedContact{
				Contact: contact, Available: from, Entry: c,
			}})
		}
		if len(page) < deletedContactsPage {
			break
		}
		afterHost, afterUser = page[len(page)-1].Host, page[len(page)-1].Username
	}

	for _, t := range sessions {
		t.Close(stream.Error{Err: stream.NotAuthorized.Err, Text: []struct {
			Lang  string
			Value string
		}{{Value: "account deleted"}}})
	}
	if len(sessions) == 0 {
		s.markDeletionDone(ctx, ds, d)
		return
	}
	// Ending sessions write (last activity at logout, for one): wait for
	// them to unbind, then remove it.
	deadline := time.Now().Add(unbindWait)
	for anyBound(core, sessions) && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	stuck := anyBound(core, sessions)
	core.ForgetAccount(ctx, user)
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := ds.PurgeDeleted(qctx, user.Domainpart(), user.Localpart()); err != nil {
		s.logger.Error("purging a deleted account failed", "jid", bare, "err", err)
		return
	}
	if stuck {
		// Left pending: storage refuses the account for a minute at most.
		s.logger.Warn("a deleted account's session did not end in time", "jid", bare, "wait", unbindWait)
		return
	}
	s.markDeletionDone(ctx, ds, d)
}

// markDeletionDone marks deletion d done, logging a failure (the account
// can then be created again a minute after its deletion).
func (s *Server) markDeletionDone(ctx context.Context, ds AccountDeletionStore, d storage.AccountDeletion) {
	if d.Done {
		return
	}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := ds.MarkDeletionDone(qctx, d.Seq); err != nil {
		s.logger.Error("marking an account deletion done failed", "jid", d.Username+"@"+d.Host, "err", err)
	}
}

// anyBound reports whether any of targets is still bound.
func anyBound(core *router.Router, targets []router.Target) bool {
	for _, t := range targets {
		if core.Session(t.JID()) == t {
			return true
		}
	}
	return false
}
