package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/term"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/config"
	"ottr.im/ottr/server"
	"ottr.im/ottr/storage"
	"ottr.im/ottr/storage/claimlog"
	"ottr.im/ottr/storage/sqlite"
)

// maxPasswordLen is the longest password a PLAIN login can carry (RFC 7622
// bounds each field of the SASL message to 1023 bytes).
const maxPasswordLen = 1023

// userSynopsis is the usage line of "ottr user".
const userSynopsis = "add|passwd|del|kick [-c FILE] user@host | list [-c FILE] [-l] [host]"

// runUser implements "ottr user": it dispatches to add, passwd, del and
// list.
func runUser(ctx context.Context, e *env, args []string) error {
	usage := &usageError{usage: fmt.Sprintf(`usage: ottr user add [-c FILE] user@host      create an account with a password
       ottr user passwd [-c FILE] user@host   change its password
       ottr user del [-c FILE] user@host      delete it and everything stored for it
       ottr user list [-c FILE] [-l] [host]   list accounts (of host, or of every host);
                                              -l: with the SASL mechanisms each can use
       ottr user kick [-c FILE] user@host     end its sessions and revoke its FAST tokens

The password is read from stdin when stdin is not a terminal (one line),
else asked twice without echo. Accounts live in DATA_DIR/%s.
Deleting an account removes its roster, offline messages, vCard, private
XML and block list, and unsubscribes its contacts; a running server ends
its sessions within seconds. A token user can log in again afterwards,
with nothing of the old account. Until the server has ended the old
sessions (a minute at most), the account cannot be created again.
Run "ottr user COMMAND -h" for the flags.
`, config.DatabaseFile)}
	if len(args) == 0 {
		usage.msg = "no user command given"
		return usage
	}
	subs := map[string]func(context.Context, *env, []string) error{
		"add":    userAdd,
		"passwd": userPasswd,
		"del":    userDel,
		"list":   userList,
		"kick":   userKick,
	}
	switch sub := args[0]; sub {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(e.stdout, usage.usage)
		return nil
	default:
		if run, ok := subs[sub]; ok {
			if err := run(ctx, e, args[1:]); err != nil {
				return fmt.Errorf("%s: %w", sub, err)
			}
			return nil
		}
	}
	usage.msg = fmt.Sprintf("unknown user command %q", args[0])
	return usage
}

// account is the target of a user command: the configuration in force and
// the prepared account name.
type account struct {
	cfg  *config.Config
	host string // the configured host, lowercased
	user string // nodeprepped
}

func (a account) String() string { return a.user + "@" + a.host }

// parseAccountArgs parses the flags and the single user@host argument of
// "ottr user name" and loads the configuration.
func parseAccountArgs(e *env, name string, args []string) (account, error) {
	f := newFlagSet("user "+name, "[-c FILE] user@host")
	cfgPath := f.configFlag()
	if err := f.parse(e, args); err != nil {
		return account{}, err
	}
	if err := f.nArgs(1, "user@host"); err != nil {
		return account{}, err
	}
	user, hostName, err := splitJID(f.Arg(0))
	if err != nil {
		return account{}, f.usageErr("%v", err)
	}
	cfg, onDefaults, err := loadConfig(*cfgPath)
	if err != nil {
		return account{}, err
	}
	h, err := configuredHost(cfg, hostName, onDefaults)
	if err != nil {
		return account{}, err
	}
	return account{cfg: cfg, host: strings.ToLower(h.Name), user: user}, nil
}

// openStore opens the account database of cfg, the one the server uses.
func openStore(ctx context.Context, cfg *config.Config) (*sqlite.Store, error) {
	return sqlite.Open(ctx, cfg.DatabasePath())
}

// accountChange is one change to an account: what it does to the store
// (given the password hash when it needs one), the error to show when the
// account is or is not there, and what to say when it worked.
type accountChange struct {
	verb     string
	password bool
	apply    func(ctx context.Context, st *sqlite.Store, a account, hash string) error
	missing  error  // the sentinel that means the change cannot apply
	refusal  string // printed after the account's name for missing
	done     string // printed before the account's name
}

// changeAccount runs "ottr user VERB [-c FILE] user@host".
func changeAccount(ctx context.Context, e *env, args []string, c accountChange) (err error) {
	a, err := parseAccountArgs(e, c.verb, args)
	if err != nil {
		return err
	}
	hash := ""
	if c.password {
		if hash, err = readPasswordHash(e); err != nil {
			return err
		}
	}
	st, err := openStore(ctx, a.cfg)
	if err != nil {
		return err
	}
	defer closeStore(st, &err)
	if err := c.apply(ctx, st, a, hash); err != nil {
		if errors.Is(err, c.missing) {
			return fmt.Errorf("%s %s", a, c.refusal)
		}
		return err
	}
	fmt.Fprintf(e.stderr, "%s %s\n", c.done, a)
	return nil
}

// userAdd implements "ottr user add".
func userAdd(ctx context.Context, e *env, args []string) error {
	return changeAccount(ctx, e, args, accountChange{
		verb: "add", password: true,
		apply: func(ctx context.Context, st *sqlite.Store, a account, hash string) error {
			return createAccount(ctx, st, a, hash, time.Now())
		},
		missing: storage.ErrExists, refusal: "already exists (use `ottr user passwd`)",
		done: "created",
	})
}

// createAccount creates the account a. While a deletion of the same
// account is pending (a running server is still ending the old account's
// sessions, which may write until they are gone: security review #9),
// storage refuses it; when no server runs, nobody would mark the deletion
// done, so the pending deletions are settled here and the creation tried
// again. Whether a server runs is told by the lock it holds on its token
// claim log in data_dir. now is for the message.
func createAccount(ctx context.Context, st *sqlite.Store, a account, hash string, now time.Time) error {
	err := st.CreateAccount(ctx, a.host, a.user, hash)
	if !errors.Is(err, storage.ErrDeletionPending) {
		return err
	}
	inUse, known, lerr := claimlog.InUse(filepath.Join(a.cfg.DataDir, claimlog.FileName))
	if lerr == nil && known && !inUse {
		last, serr := st.LastAccountDeletion(ctx)
		if serr == nil {
			_, serr = st.SettleDeletions(ctx, last)
		}
		if serr != nil {
			return serr
		}
		err = st.CreateAccount(ctx, a.host, a.user, hash)
	}
	var pending *storage.DeletionPendingError
	if errors.As(err, &pending) {
		ago := max(now.Sub(pending.Deleted).Round(time.Second), 0)
		return fmt.Errorf("%s was deleted %d s ago and a running server is still ending its sessions; try again in a few seconds",
			a, int(ago.Seconds()))
	}
	return err
}

// userPasswd implements "ottr user passwd".
func userPasswd(ctx context.Context, e *env, args []string) error {
	return changeAccount(ctx, e, args, accountChange{
		verb: "passwd", password: true,
		apply: func(ctx context.Context, st *sqlite.Store, a account, hash string) error {
			return st.SetPassword(ctx, a.host, a.user, hash)
		},
		missing: storage.ErrNotFound, refusal: "does not exist (use `ottr user add`)",
		done: "changed the password of",
	})
}

// userDel implements "ottr user del": storage removes the account and
// everything stored for it in one transaction and records the deletion,
// which a running server (another process) acts on to end the account's
// sessions and tell its contacts: at once when its admin socket answers,
// else at its next poll (within a second).
func userDel(ctx context.Context, e *env, args []string) error {
	return changeAccount(ctx, e, args, accountChange{
		verb: "del",
		apply: func(ctx context.Context, st *sqlite.Store, a account, _ string) error {
			if err := st.DeleteAccount(ctx, a.host, a.user); err != nil {
				return err
			}
			if _, err := adminCall(ctx, a.cfg, server.AdminRequest{Command: "deletions"}); err != nil && !errors.Is(err, server.ErrNoServer) {
				fmt.Fprintf(e.stderr, "ottr: the running server did not answer (%v); it ends the account's sessions at its next poll\n", err)
			}
			return nil
		},
		missing: storage.ErrNotFound, refusal: "does not exist",
		done: "deleted",
	})
}

// userList implements "ottr user list": one JID a line, marked
// "(token only)" when the account has no password; with -l, a password
// account's line also names the SASL mechanisms it can log in with
// (SCRAM-SHA-1 only once its password was set or changed since ottr
// stores SHA-1 credentials).
func userList(ctx context.Context, e *env, args []string) (err error) {
	f := newFlagSet("user list", "[-c FILE] [-l] [host]")
	cfgPath := f.configFlag()
	long := f.Bool("l", false, "also print the SASL mechanisms of each password account")
	if err := f.parse(e, args); err != nil {
		return err
	}
	if f.NArg() > 1 {
		return f.usageErr("unexpected arguments: %s", strings.Join(f.Args()[1:], " "))
	}
	cfg, onDefaults, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	host := ""
	if f.NArg() == 1 {
		h, err := configuredHost(cfg, f.Arg(0), onDefaults)
		if err != nil {
			return err
		}
		host = strings.ToLower(h.Name)
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeStore(st, &err)
	accounts, err := st.ListAccounts(ctx, host)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, acc := range accounts {
		b.WriteString(acc.Username + "@" + acc.Host)
		if !acc.HasPassword {
			b.WriteString(" (token only)")
		} else if *long {
			hash, err := st.PasswordHash(ctx, acc.Host, acc.Username)
			if err != nil {
				return err
			}
			b.WriteString(": " + strings.Join(auth.PasswordMechanisms(hash), " "))
		}
		b.WriteString("\n")
	}
	_, err = io.WriteString(e.stdout, b.String())
	return err
}

// closeStore closes st, setting *err to the failure if there was none yet.
func closeStore(st *sqlite.Store, err *error) {
	if cerr := st.Close(); cerr != nil && *err == nil {
		*err = cerr
	}
}

// readPasswordHash reads a new password (see readPassword) and returns its
// stored form.
func readPasswordHash(e *env) (string, error) {
	pw, err := readPassword(e)
	if err != nil {
		return "", err
	}
	hash, err := auth.HashPassword(pw, 0)
	if err != nil {
		return "", fmt.Errorf("hashing the password: %w", err)
	}
	return hash, nil
}

// readPassword returns a new password: the first line of stdin (without
// its line ending) when stdin is not a terminal, else one typed twice
// without echo at a prompt on stderr. An empty password is refused.
func readPassword(e *env) (string, error) {
	var pw string
	if fd := int(e.stdin.Fd()); term.IsTerminal(fd) {
		var err error
		pw, err = promptPassword(fd, e.stderr)
		if err != nil {
			return "", err
		}
	} else {
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading the password from stdin: %w", err)
		}
		pw = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if pw == "" {
			return "", errors.New("empty password on stdin (give it as the first line)")
		}
	}
	switch {
	case pw == "":
		return "", errors.New("empty password")
	case len(pw) > maxPasswordLen:
		return "", fmt.Errorf("password longer than %d bytes: a PLAIN login could not carry it", maxPasswordLen)
	}
	return pw, nil
}

// promptPassword asks for a password twice on the terminal fd, without
// echo, and returns it if both match.
func promptPassword(fd int, prompt io.Writer) (string, error) {
	read := func(label string) (string, error) {
		fmt.Fprint(prompt, label)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		return string(b), nil
	}
	pw, err := read("Password: ")
	if err != nil {
		return "", err
	}
	if pw == "" {
		return "", errors.New("empty password")
	}
	again, err := read("Password (again): ")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errors.New("the passwords do not match")
	}
	return pw, nil
}
