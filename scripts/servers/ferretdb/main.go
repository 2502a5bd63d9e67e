// Command ferretdb runs FerretDB v1 (SQLite backend) through its embeddable
// package, for local tests of account-balance.
//
// Embedding avoids the panic of a plain `go install .../cmd/ferretdb@v1.24.x`
// (build/version/version.txt is missing from the module copy).
//
// Build it with scripts/servers/mongo, which applies fixes.patch to FerretDB
// first: a plain `go build` here gives the unpatched server.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27018", "TCP address to listen on")
	dir := flag.String("sqlite-dir", "", "existing directory for the SQLite databases")
	verbose := flag.Bool("debug", false, "debug logging")
	flag.Parse()

	// The server's live heap is small and its request path allocates a lot; Go's default
	// (collect each time the heap doubles) spent about a sixth of insert CPU in the collector.
	// GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}

	if *dir == "" {
		fmt.Fprintln(os.Stderr, "ferretdb: -sqlite-dir is required")
		os.Exit(2)
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(lazyAttrs{inner: slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})})

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dir + "/",
	})
	if err != nil {
		logger.Error("start failed", "error", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	logger.Info("FerretDB ready", "uri", f.MongoDBURI())
	if err := f.Run(ctx); err != nil {
		logger.Error("run failed", "error", err)
		os.Exit(1)
	}
	logger.Info("FerretDB stopped")
}

// lazyAttrs keeps the attributes given to Logger.With and formats them only when a record is
// handled. slog's TextHandler formats them in WithAttrs, and FerretDB's SQL layer calls With
// with every query's arguments (whole documents, for inserts) before each debug line, enabled
// or not: at Info level that formatting took a fifth of the server's CPU on inserts.
type lazyAttrs struct {
	inner slog.Handler
	attrs []slog.Attr
}

func (h lazyAttrs) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h lazyAttrs) Handle(ctx context.Context, r slog.Record) error {
	if len(h.attrs) == 0 {
		return h.inner.Handle(ctx, r)
	}
	return h.inner.WithAttrs(h.attrs).Handle(ctx, r)
}

func (h lazyAttrs) WithAttrs(attrs []slog.Attr) slog.Handler {
	// A full slice expression: appending never writes into a parent handler's array.
	return lazyAttrs{inner: h.inner, attrs: append(h.attrs[:len(h.attrs):len(h.attrs)], attrs...)}
}

func (h lazyAttrs) WithGroup(name string) slog.Handler {
	return lazyAttrs{inner: h.inner.WithAttrs(h.attrs).WithGroup(name)}
}
