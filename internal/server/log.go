package server

import (
	"log"
	"log/slog"
	"strings"
)

// slogErrorLog routes net/http's internal errors (TLS handshake failures
// and the like) into the structured log at debug level: they are the
// client's problem, not the gateway's.
func slogErrorLog(l *slog.Logger) *log.Logger {
	return log.New(writerFunc(func(p []byte) (int, error) {
		l.Debug("http server", "msg", strings.TrimSpace(string(p)))
		return len(p), nil
	}), "", 0)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
