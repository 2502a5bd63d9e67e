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
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27018", "TCP address to listen on")
	dir := flag.String("sqlite-dir", "", "existing directory for the SQLite databases")
	debug := flag.Bool("debug", false, "debug logging")
	flag.Parse()

	if *dir == "" {
		fmt.Fprintln(os.Stderr, "ferretdb: -sqlite-dir is required")
		os.Exit(2)
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

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
