package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"mellium.im/xmpp/jid"
)

// The admin socket: "ottr ctl" (and "ottr user kick") talk to the running
// server over a Unix socket in data_dir, mode 0600 in a directory of mode
// 0700, so only the server's own user (and root) can connect. Each
// connection carries one request, a JSON AdminRequest on one line, and
// gets one AdminResponse back, then is closed.

// AdminRequest is one command on the admin socket.
type AdminRequest struct {
	// Command is "sessions", "kick", "revoke", "stats", "reload" or
	// "deletions" (act on the account deletions recorded so far).
	Command string `json:"command"`
	// JID is the full or bare JID to kick, or the bare JID to revoke.
	JID string `json:"jid,omitempty"`
	// Reason is the text of the kick's stream error.
	Reason string `json:"reason,omitempty"`
}

// AdminResponse is the server's answer to an AdminRequest: Error, or the
// command's result.
type AdminResponse struct {
	// Error is why the command failed; empty when it succeeded.
	Error string `json:"error,omitempty"`
	// Sessions answers "sessions".
	Sessions []SessionInfo `json:"sessions,omitempty"`
	// Kicked is how many sessions "kick" or "revoke" ended.
	Kicked int `json:"kicked,omitempty"`
	// Revoked is how many FAST tokens "revoke" deleted.
	Revoked int `json:"revoked,omitempty"`
	// Stats answers "stats".
	Stats *Stats `json:"stats,omitempty"`
	// Reload answers "reload".
	Reload *ReloadResult `json:"reload,omitempty"`
}

// maxAdminRequest bounds one request line; maxAdminResponse one answer
// (a list of a million sessions takes about 150 MB).
const (
	maxAdminRequest  = 64 << 10
	maxAdminResponse = 1 << 30
)

// startAdminSocket listens on data_dir's admin socket. A socket file left
// by a server that is gone is replaced. The server serves without it when
// it cannot listen there (a path longer than a Unix socket's 107 bytes, a
// read-only data_dir): that is logged, and "ottr ctl" cannot reach it.
func (s *Server) startAdminSocket() {
	path := s.cfg.AdminSocketPath()
	l, err := listenAdminSocket(path)
	if err != nil {
		s.logger.Warn("no admin socket: ottr ctl cannot reach this server", "err", err)
		return
	}
	s.adminSock = l
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serveAdmin(c)
			}()
		}
	}()
}

// listenAdminSocket listens on the Unix socket at path with mode 0600,
// replacing a socket file nobody answers on.
func listenAdminSocket(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another server answers on %s", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// serveAdmin answers the one request of an admin connection.
func (s *Server) serveAdmin(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var req AdminRequest
	line, err := bufio.NewReader(io.LimitReader(c, maxAdminRequest)).ReadBytes('\n')
	if err == nil || (errors.Is(err, io.EOF) && len(line) > 0) {
		err = json.Unmarshal(line, &req)
	}
	var resp AdminResponse
	if err != nil {
		resp.Error = "bad request: " + err.Error()
	} else {
		ctx, cancel := context.WithTimeout(s.ctx, 25*time.Second)
		resp = s.adminCommand(ctx, req)
		cancel()
	}
	json.NewEncoder(c).Encode(resp)
}

// adminCommand runs one admin request.
func (s *Server) adminCommand(ctx context.Context, req AdminRequest) AdminResponse {
	var resp AdminResponse
	var err error
	switch req.Command {
	case "sessions":
		resp.Sessions = s.Sessions()
	case "kick", "revoke":
		var j jid.JID
		if j, err = jid.Parse(req.JID); err != nil {
			err = fmt.Errorf("%q is not a JID: %w", req.JID, err)
			break
		}
		if req.Command == "kick" {
			resp.Kicked, err = s.Kick(j, req.Reason)
		} else {
			resp.Kicked, resp.Revoked, err = s.RevokeUser(ctx, j)
		}
	case "stats":
		st := s.Stats(ctx)
		resp.Stats = &st
	case "deletions":
		err = s.ActOnDeletions(ctx)
	case "reload":
		var r ReloadResult
		r, err = s.Reload()
		resp.Reload = &r
	default:
		err = fmt.Errorf("unknown command %q", req.Command)
	}
	if err != nil {
		resp.Error = err.Error()
	}
	s.logger.Info("admin command", "command", req.Command, "jid", req.JID, "err", resp.Error)
	return resp
}

// ErrNoServer is returned by AdminCall when no server answers on the
// socket.
var ErrNoServer = errors.New("no server is running on this data_dir")

// AdminCall sends req to the server whose admin socket is at path (the
// configuration's AdminSocketPath) and returns its answer: an error
// wrapping ErrNoServer when none listens there, one with the server's
// message when the command failed.
func AdminCall(ctx context.Context, path string, req AdminRequest) (AdminResponse, error) {
	var resp AdminResponse
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := d.DialContext(dctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return resp, fmt.Errorf("%w (no one answers on %s)", ErrNoServer, path)
		}
		return resp, fmt.Errorf("the server's admin socket: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return resp, fmt.Errorf("sending to the server: %w", err)
	}
	line, err := bufio.NewReader(io.LimitReader(c, maxAdminResponse)).ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return resp, fmt.Errorf("reading the server's answer: %w", err)
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		return resp, fmt.Errorf("the server's answer: %w", err)
	}
	if resp.Error != "" {
		return resp, fmt.Errorf("the server: %s", resp.Error)
	}
	return resp, nil
}

// closeAdmin closes the admin socket and endpoint (Shutdown).
func (s *Server) closeAdmin(ctx context.Context) {
	if s.adminSock != nil {
		s.adminSock.Close() // removes the socket file
	}
	if s.adminHTTP != nil {
		s.adminHTTP.Shutdown(ctx)
	}
}
