package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"ottr.im/ottr/storage"
)

// The personal eventing store (XEP-0163): nodes with their configuration
// and the items published to them, per user.

const pepNodeColumns = `node, access, max_items, persist, send_last`

func scanPEPNode(row interface{ Scan(...any) error }) (storage.PEPNode, error) {
	var n storage.PEPNode
	err := row.Scan(&n.Node, &n.Access, &n.MaxItems, &n.PersistItems, &n.SendLast)
	return n, err
}

// PEPNode returns one node of the user's; ok is false when there is none.
func (s *Store) PEPNode(ctx context.Context, host, user, node string) (storage.PEPNode, bool, error) {
	n, err := scanPEPNode(s.db.QueryRowContext(ctx,
		`SELECT `+pepNodeColumns+` FROM pep_nodes WHERE host = ? AND username = ? AND node = ?`, host, user, node))
	if errors.Is(err, sql.ErrNoRows) {
		return storage.PEPNode{}, false, nil
	}
	if err != nil {
		return storage.PEPNode{}, false, fmt.Errorf("sqlite: pep node %s of %s@%s: %w", node, user, host, err)
	}
	return n, true, nil
}

// PEPNodes returns the user's nodes, by name.
func (s *Store) PEPNodes(ctx context.Context, host, user string) ([]storage.PEPNode, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT `+pepNodeColumns+` FROM pep_nodes WHERE host = ? AND username = ? ORDER BY node`, host, user)
	if err != nil {
		return nil, fmt.Errorf("sqlite: pep nodes of %s@%s: %w", user, host, err)
	}
	defer rows.Close()
	var out []storage.PEPNode
	for rows.Next() {
		n, err := scanPEPNode(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: pep nodes of %s@%s: %w", user, host, err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: pep nodes of %s@%s: %w", user, host, err)
	}
	return out, nil
}

// createPEPNode inserts n for the user in tx unless the user has
// lim.Nodes nodes already (an error wrapping storage.ErrQuota) or n
// exists (storage.ErrExists).
func createPEPNode(ctx context.Context, tx *sql.Tx, host, user string, n storage.PEPNode, lim storage.PEPLimits) error {
	var count, same int
	err := tx.QueryRowContext(ctx,
		`SELECT count(*), count(*) FILTER (WHERE node = ?) FROM pep_nodes WHERE host = ? AND username = ?`,
		n.Node, host, user).Scan(&count, &same)
	if err != nil {
		return fmt.Errorf("count nodes: %w", err)
	}
	if same > 0 {
		return fmt.Errorf("node %s: %w", n.Node, storage.ErrExists)
	}
	if err := (storage.Quota{Count: lim.Nodes, Bytes: lim.Bytes}).Check(count, 1, 0, 0); err != nil {
		return fmt.Errorf("nodes: %w", err)
	}
	_, err = tx.ExecContext(ctx,
		`INSERT INTO pep_nodes (host, username, `+pepNodeColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		host, user, n.Node, n.Access, n.MaxItems, n.PersistItems, n.SendLast)
	return err
}

// keptItems is how many items a node of configuration n keeps.
func keptItems(n storage.PEPNode) int {
	if !n.PersistItems || n.MaxItems < 1 {
		return 1
	}
	return n.MaxItems
}

// trimPEPNode deletes the oldest items of a node beyond what n keeps.
func trimPEPNode(ctx context.Context, tx *sql.Tx, host, user string, n storage.PEPNode) error {
	_, err := tx.ExecContext(ctx,
		`DELETE FROM pep_items WHERE host = ? AND username = ? AND node = ? AND seq NOT IN (
			SELECT seq FROM pep_items WHERE host = ? AND username = ? AND node = ? ORDER BY seq DESC LIMIT ?)`,
		host, user, n.Node, host, user, n.Node, keptItems(n))
	if err != nil {
		return fmt.Errorf("trim node %s: %w", n.Node, err)
	}
	return nil
}

// CreatePEPNode creates a node with configuration n. A node of that name
// fails with an error wrapping storage.ErrExists; one node more than
// lim.Nodes with one wrapping storage.ErrQuota.
func (s *Store) CreatePEPNode(ctx context.Context, host, user string, n storage.PEPNode, lim storage.PEPLimits) error {
	err := s.write(ctx, func(tx *sql.Tx) error { return createPEPNode(ctx, tx, host, user, n, lim) })
	if err != nil {
		return fmt.Errorf("sqlite: create pep node %s of %s@%s: %w", n.Node, user, host, err)
	}
	return nil
}

// ConfigurePEPNode replaces the configuration of the node n names and
// deletes its oldest items beyond what the new one keeps. A node that
// does not exist fails with an error wrapping storage.ErrNotFound.
func (s *Store) ConfigurePEPNode(ctx context.Context, host, user string, n storage.PEPNode) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`UPDATE pep_nodes SET access = ?, max_items = ?, persist = ?, send_last = ?
			WHERE host = ? AND username = ? AND node = ?`,
			n.Access, n.MaxItems, n.PersistItems, n.SendLast, host, user, n.Node)
		if err != nil {
			return err
		}
		if k, err := res.RowsAffected(); err != nil {
			return err
		} else if k == 0 {
			return fmt.Errorf("node %s: %w", n.Node, storage.ErrNotFound)
		}
		return trimPEPNode(ctx, tx, host, user, n)
	})
	if err != nil {
		return fmt.Errorf("sqlite: configure pep node %s of %s@%s: %w", n.Node, user, host, err)
	}
	return nil
}

// DeletePEPNode deletes a node and its items and reports whether it
// existed.
func (s *Store) DeletePEPNode(ctx context.Context, host, user, node string) (bool, error) {
	var existed bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM pep_nodes WHERE host = ? AND username = ? AND node = ?`, host, user, node)
		if err != nil {
			return err
		}
		k, err := res.RowsAffected()
		existed = k > 0
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM pep_items WHERE host = ? AND username = ? AND node = ?`, host, user, node)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: delete pep node %s of %s@%s: %w", node, user, host, err)
	}
	return existed, nil
}

// PurgePEPNode deletes every item of a node. A node that does not exist
// fails with an error wrapping storage.ErrNotFound.
func (s *Store) PurgePEPNode(ctx context.Context, host, user, node string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := pepNodeExists(ctx, tx, host, user, node); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM pep_items WHERE host = ? AND username = ? AND node = ?`, host, user, node)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: purge pep node %s of %s@%s: %w", node, user, host, err)
	}
	return nil
}

func pepNodeExists(ctx context.Context, tx *sql.Tx, host, user, node string) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM pep_nodes WHERE host = ? AND username = ? AND node = ?`, host, user, node).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("node %s: %w", node, storage.ErrNotFound)
	}
	return err
}

// pepBytes is the bytes of the user's item payloads.
func pepBytes(ctx context.Context, tx *sql.Tx, host, user string) (int64, error) {
	var n int64
	err := tx.QueryRowContext(ctx,
		`SELECT coalesce(sum(length(payload)), 0) FROM pep_items WHERE host = ? AND username = ?`, host, user).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count bytes: %w", err)
	}
	return n, nil
}

// PublishPEPItem publishes it to the node n names, in one transaction:
// the node is created with configuration n if it does not exist (one
// node more than lim.Nodes fails with an error wrapping
// storage.ErrQuota), an item with the same id is replaced, and the
// node's oldest items beyond what its configuration keeps are deleted.
// A publish that would leave the user's payloads larger than lim.Bytes,
// and larger than before, stores nothing and fails with an error
// wrapping storage.ErrQuota. It returns the node's configuration and
// whether it created the node.
func (s *Store) PublishPEPItem(ctx context.Context, host, user string, n storage.PEPNode, it storage.PEPItem, lim storage.PEPLimits) (storage.PEPNode, bool, error) {
	created := false
	err := s.write(ctx, func(tx *sql.Tx) error {
		cur, err := scanPEPNode(tx.QueryRowContext(ctx,
			`SELECT `+pepNodeColumns+` FROM pep_nodes WHERE host = ? AND username = ? AND node = ?`, host, user, n.Node))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if err := createPEPNode(ctx, tx, host, user, n, lim); err != nil {
				return err
			}
			created = true
		case err != nil:
			return fmt.Errorf("read node: %w", err)
		default:
			n = cur
		}
		before, err := pepBytes(ctx, tx, host, user)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`DELETE FROM pep_items WHERE host = ? AND username = ? AND node = ? AND item_id = ?`,
			host, user, n.Node, it.ID); err != nil {
			return fmt.Errorf("replace item: %w", err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO pep_items (host, username, node, item_id, published, payload) VALUES (?, ?, ?, ?, ?, ?)`,
			host, user, n.Node, it.ID, it.Published.UnixNano(), it.Payload); err != nil {
			return fmt.Errorf("insert item: %w", err)
		}
		if err := trimPEPNode(ctx, tx, host, user, n); err != nil {
			return err
		}
		after, err := pepBytes(ctx, tx, host, user)
		if err != nil {
			return err
		}
		if after > lim.Bytes && after > before {
			return fmt.Errorf("%d bytes stored, %d after the publish, the limit is %d: %w", before, after, lim.Bytes, storage.ErrQuota)
		}
		return nil
	})
	if err != nil {
		return storage.PEPNode{}, false, fmt.Errorf("sqlite: publish to pep node %s of %s@%s: %w", n.Node, user, host, err)
	}
	return n, created, nil
}

// RetractPEPItem deletes one item and reports whether it existed. A node
// that does not exist fails with an error wrapping storage.ErrNotFound.
func (s *Store) RetractPEPItem(ctx context.Context, host, user, node, id string) (bool, error) {
	var existed bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := pepNodeExists(ctx, tx, host, user, node); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx,
			`DELETE FROM pep_items WHERE host = ? AND username = ? AND node = ? AND item_id = ?`, host, user, node, id)
		if err != nil {
			return err
		}
		k, err := res.RowsAffected()
		existed = k > 0
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: retract from pep node %s of %s@%s: %w", node, user, host, err)
	}
	return existed, nil
}

// PEPItems returns items of a node, newest first: those with the given
// ids when ids is not empty (the others are left out), else all of them,
// at most max when max is above 0.
func (s *Store) PEPItems(ctx context.Context, host, user, node string, ids []string, max int) ([]storage.PEPItem, error) {
	q := `SELECT item_id, published, payload FROM pep_items WHERE host = ? AND username = ? AND node = ?`
	args := []any{host, user, node}
	if len(ids) > 0 {
		q += ` AND item_id IN (?` + strings.Repeat(`, ?`, len(ids)-1) + `)`
		for _, id := range ids {
			args = append(args, id)
		}
	}
	q += ` ORDER BY seq DESC`
	if max > 0 {
		q += ` LIMIT ?`
		args = append(args, max)
	}
	var out []storage.PEPItem
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var it storage.PEPItem
			var ns int64
			if err := rows.Scan(&it.ID, &ns, &it.Payload); err != nil {
				return err
			}
			it.Published = time.Unix(0, ns).UTC()
			out = append(out, it)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: items of pep node %s of %s@%s: %w", node, user, host, err)
	}
	return out, nil
}
