package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/jobgate/jobgate/internal/store"
)

// migrateKeysCommand is `jobgate migrate-keys`: the upgrade step that
// renames an installation's keys to their hash-tagged names (store.MigrateKeys).
func migrateKeysCommand(stdout io.Writer) *cobra.Command {
	var redisURL, redisCA string
	cmd := &cobra.Command{
		Use:   "migrate-keys",
		Short: "Rename the Redis keys of an older jobgate to their hash-tagged names (run once, with every gateway and worker stopped)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if redisURL == "" {
				return errors.New("--redis-url (or JOBGATE_REDIS_URL) is required")
			}
			ctx := cmd.Context()
			rdb, err := connectRedis(ctx, redisURL, redisCA)
			if err != nil {
				return err
			}
			defer rdb.Close()
			res, err := store.New(rdb, store.Config{}).MigrateKeys(ctx)
			fmt.Fprintf(stdout, "renamed %d keys\n", res.Renamed)
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&redisURL, "redis-url", "", "Redis URL of the installation (any form the gateway takes)")
	fl.StringVar(&redisCA, "redis-ca-file", "", "CA certificate (PEM) that signed a TLS server's certificate")
	return cmd
}

// checkKeys stops a gateway or worker from starting on an installation
// whose keys still have their old names (store.CheckKeys). own says that
// this process started the Redis itself (jobgate dev), with nothing else
// on it: then it migrates them instead.
func checkKeys(ctx context.Context, rdb redis.UniversalClient, own bool, logger *slog.Logger) error {
	st := store.New(rdb, store.Config{})
	err := st.CheckKeys(ctx)
	if !own || !errors.Is(err, store.ErrOldKeys) {
		return err
	}
	res, err := st.MigrateKeys(ctx)
	if err != nil {
		return err
	}
	logger.InfoContext(ctx, "renamed the keys of an older jobgate to their hash-tagged names", slog.Int("keys", res.Renamed))
	return st.CheckKeys(ctx)
}
