package c2s

import (
	"context"
	"log/slog"
)

// connLog is a connection's logger: the parent logger and the few
// attributes that name the connection, added at each call. Unlike
// slog.Logger.With it preformats nothing, so an idle session holds a few
// words instead of a cloned handler with its buffers.
type connLog struct {
	base  *slog.Logger
	attrs []any // "conn", id, "remote", addr, and "jid", full once bound
}

func (l *connLog) with(args ...any) *connLog {
	return &connLog{base: l.base, attrs: append(l.attrs[:len(l.attrs):len(l.attrs)], args...)}
}

func (l *connLog) log(level slog.Level, msg string, args []any) {
	ctx := context.Background()
	if !l.base.Enabled(ctx, level) {
		return
	}
	l.base.Log(ctx, level, msg, append(l.attrs[:len(l.attrs):len(l.attrs)], args...)...)
}

func (l *connLog) Debug(msg string, args ...any) { l.log(slog.LevelDebug, msg, args) }
func (l *connLog) Info(msg string, args ...any)  { l.log(slog.LevelInfo, msg, args) }
func (l *connLog) Warn(msg string, args ...any)  { l.log(slog.LevelWarn, msg, args) }
func (l *connLog) Error(msg string, args ...any) { l.log(slog.LevelError, msg, args) }
