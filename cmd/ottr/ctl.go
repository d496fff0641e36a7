package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/BurntSushi/toml"
	"mellium.im/xmpp/jid"

	"ottr.im/ottr/config"
	"ottr.im/ottr/server"
)

// ctlSynopsis is the usage line of "ottr ctl".
const ctlSynopsis = "[-c FILE] sessions | kick [-reason TEXT] JID | stats | reload"

// runCtl implements "ottr ctl": it sends one command to the server running
// on the configuration's data_dir, over its admin socket, and prints the
// answer.
func runCtl(ctx context.Context, e *env, args []string) error {
	f := newFlagSet("ctl", ctlSynopsis)
	cfgPath := f.configFlag()
	if err := f.parse(e, args); err != nil {
		return err
	}
	if f.NArg() == 0 {
		return f.usageErr("no command given (sessions, kick, stats, reload)")
	}
	cfg, err := ctlConfig(*cfgPath)
	if err != nil {
		return err
	}
	cmd, rest := f.Arg(0), f.Args()[1:]
	req := server.AdminRequest{Command: cmd}
	switch cmd {
	case "sessions", "stats", "reload":
		if len(rest) > 0 {
			return f.usageErr("%s takes no arguments", cmd)
		}
	case "kick":
		k := newFlagSet("ctl kick", "[-reason TEXT] JID")
		reason := k.String("reason", "", "the `TEXT` of the stream error the client is sent")
		if err := k.parse(e, rest); err != nil {
			return err
		}
		if err := k.nArgs(1, "JID"); err != nil {
			return err
		}
		if _, err := jid.Parse(k.Arg(0)); err != nil {
			return k.usageErr("%q is not a JID: %v", k.Arg(0), err)
		}
		req.JID, req.Reason = k.Arg(0), *reason
	default:
		return f.usageErr("unknown ctl command %q (sessions, kick, stats, reload)", cmd)
	}
	resp, err := adminCall(ctx, cfg, req)
	if err != nil {
		return err
	}
	switch cmd {
	case "sessions":
		return printSessions(e.stdout, resp.Sessions)
	case "kick":
		_, err = fmt.Fprintf(e.stdout, "%d session(s) of %s ended\n", resp.Kicked, req.JID)
	case "stats":
		err = printStats(e.stdout, resp.Stats)
	case "reload":
		err = printReload(e.stdout, resp.Reload)
	}
	return err
}

// ctlConfig returns the configuration whose data_dir holds the admin
// socket. A file that does not validate still gives its data_dir: "ottr
// ctl reload" then lets the server say what is wrong with it (and keep
// the configuration in force).
func ctlConfig(path string) (*config.Config, error) {
	cfg, _, err := loadConfig(path)
	if err == nil {
		return cfg, nil
	}
	var partial struct {
		DataDir string `toml:"data_dir"`
	}
	if _, derr := toml.DecodeFile(path, &partial); derr != nil {
		return nil, err
	}
	cfg = config.Default()
	if partial.DataDir != "" {
		cfg.DataDir = partial.DataDir
	}
	return cfg, nil
}

// adminCall sends req to the server running on cfg's data_dir and returns
// its answer (see server.AdminCall).
func adminCall(ctx context.Context, cfg *config.Config, req server.AdminRequest) (server.AdminResponse, error) {
	return server.AdminCall(ctx, cfg.AdminSocketPath(), req)
}

// printSessions prints one session a line, under a header.
func printSessions(w io.Writer, sessions []server.SessionInfo) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "JID\tTRANSPORT\tADDRESS\tSINCE\tCLIENT")
	for _, s := range sessions {
		client := s.Client
		if client == "" {
			client = "-"
		}
		transport := s.Transport
		if s.Waiting {
			transport += " (waiting for resumption)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.JID, transport, s.Address, s.Since.UTC().Format(time.RFC3339), client)
	}
	return tw.Flush()
}

// printStats prints the server's figures, one a line.
func printStats(w io.Writer, st *server.Stats) error {
	if st == nil {
		return errors.New("the server sent no figures")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "uptime       %s\n", st.Uptime.Round(time.Second))
	fmt.Fprintf(&b, "hosts        %s\n", strings.Join(st.Hosts, ", "))
	fmt.Fprintf(&b, "accounts     %d\n", st.Accounts)
	fmt.Fprintf(&b, "connections  %d\n", st.Connections)
	fmt.Fprintf(&b, "sessions     %s\n", countsLine(st.Sessions))
	fmt.Fprintf(&b, "logins       %s\n", countsLine(st.Logins))
	fmt.Fprintf(&b, "stanzas      %s\n", countsLine(st.Stanzas))
	_, err := io.WriteString(w, b.String())
	return err
}

// countsLine formats counts by name as "a 1, b 2", sorted by name.
func countsLine(counts map[string]int) string {
	if len(counts) == 0 {
		return "0"
	}
	names := make([]string, 0, len(counts))
	for n := range counts {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %d", n, counts[n])
	}
	return strings.Join(parts, ", ")
}

// printReload says what a reload applied and what needs a restart.
func printReload(w io.Writer, r *server.ReloadResult) error {
	if r == nil {
		return errors.New("the server sent no reload result")
	}
	fmt.Fprintf(w, "reloaded: %s\n", strings.Join(r.Applied, ", "))
	if len(r.Restart) > 0 {
		fmt.Fprintf(w, "changed, taking effect at the next restart: %s\n", strings.Join(r.Restart, ", "))
	}
	return nil
}

// userKick implements "ottr user kick": through the running server, the
// account's sessions end and its FAST tokens are deleted; with no server
// running there are no sessions, and the tokens are deleted in the
// database directly.
func userKick(ctx context.Context, e *env, args []string) error {
	a, err := parseAccountArgs(e, "kick", args)
	if err != nil {
		return err
	}
	resp, err := adminCall(ctx, a.cfg, server.AdminRequest{Command: "revoke", JID: a.String()})
	switch {
	case err == nil:
		_, err = fmt.Fprintf(e.stdout, "%s: %d session(s) ended, %d FAST token(s) revoked\n", a, resp.Kicked, resp.Revoked)
		return err
	case !errors.Is(err, server.ErrNoServer):
		return err
	}
	st, err := openStore(ctx, a.cfg)
	if err != nil {
		return err
	}
	defer closeStore(st, &err)
	bare, err := jid.New(a.user, a.host, "")
	if err != nil {
		return err
	}
	n, err := server.RevokeFastTokens(ctx, st, bare)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%s: no server running, no session to end; %d FAST token(s) revoked\n", a, n)
	return err
}

// reloadOnHangup reloads srv's configuration on every SIGHUP until ctx is
// done. A failed reload is logged by the server, which keeps the
// configuration in force.
func reloadOnHangup(ctx context.Context, srv *server.Server, logger *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			logger.Info("SIGHUP: reloading the configuration")
			srv.Reload() // logs what it did, or why it failed
		}
	}
}

// configReloader returns what the server calls to read its configuration
// again: the file at path, or the built-in defaults with their generated
// secrets when path is empty.
func configReloader(path string) func() (*config.Config, error) {
	return func() (*config.Config, error) {
		cfg, onDefaults, err := loadConfig(path)
		if err == nil && onDefaults {
			err = fillSecrets(cfg)
		}
		return cfg, err
	}
}
