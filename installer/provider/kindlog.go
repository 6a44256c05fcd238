package provider

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	kindlog "sigs.k8s.io/kind/pkg/log"
)

// slogKind adapts a *slog.Logger to kind's log.Logger. kind's V(0) status
// lines become Info records, higher verbosities Debug records; every
// record carries source=kind.
type slogKind struct {
	log *slog.Logger
}

var _ kindlog.Logger = slogKind{}

// newKindLogger returns kind's logger writing to l (nil: discard).
func newKindLogger(l *slog.Logger) slogKind {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return slogKind{log: l.With("source", "kind")}
}

func (s slogKind) emit(level slog.Level, msg string) {
	// kind's status lines are indented and decorated (" ✓ Preparing nodes 📦").
	s.log.Log(context.Background(), level, strings.TrimSpace(msg))
}

func (s slogKind) Warn(message string) { s.emit(slog.LevelWarn, message) }

func (s slogKind) Warnf(format string, args ...any) {
	s.emit(slog.LevelWarn, fmt.Sprintf(format, args...))
}

func (s slogKind) Error(message string) { s.emit(slog.LevelError, message) }

func (s slogKind) Errorf(format string, args ...any) {
	s.emit(slog.LevelError, fmt.Sprintf(format, args...))
}

func (s slogKind) V(level kindlog.Level) kindlog.InfoLogger {
	l := slog.LevelInfo
	if level > 0 {
		l = slog.LevelDebug
	}
	return slogKindInfo{s: s, level: l}
}

// slogKindInfo is kind's InfoLogger at one slog level.
type slogKindInfo struct {
	s     slogKind
	level slog.Level
}

func (i slogKindInfo) Enabled() bool {
	return i.s.log.Enabled(context.Background(), i.level)
}

func (i slogKindInfo) Info(message string) {
	if i.Enabled() {
		i.s.emit(i.level, message)
	}
}

func (i slogKindInfo) Infof(format string, args ...any) {
	if i.Enabled() {
		i.s.emit(i.level, fmt.Sprintf(format, args...))
	}
}
