package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jobgate/jobgate/internal/artifact"
)

// artifactFlags say where the artifact store is: a folder (--artifacts-dir)
// or a URL (--artifacts-url, a folder or an S3 bucket), with what reaches an
// S3 server. The credentials also read the standard AWS variables
// (envAliases), after their JOBGATE_ ones.
type artifactFlags struct {
	dir, defaultDir             string
	url, endpoint, region       string
	pathStyle                   bool
	accessKey, secretKey, token string
	hasDir                      bool
	cmd                         *cobra.Command
}

// register adds the flags to cmd. defaultDir is the folder used when
// neither --artifacts-dir nor --artifacts-url is given; withDir adds
// --artifacts-dir itself (dev's folder is in its --data-dir).
func (a *artifactFlags) register(cmd *cobra.Command, withDir bool, defaultDir, sharedWith string) {
	fl := cmd.Flags()
	a.cmd, a.hasDir, a.defaultDir = cmd, withDir, defaultDir
	if withDir {
		// Explicit: the CLI's own folder, not a component's default.
		fl.StringVar(&a.dir, "artifacts-dir", defaultDir, "artifact store folder, shared with the "+sharedWith+" (or --artifacts-url)")
	}
	fl.StringVar(&a.url, "artifacts-url", "", "artifact store: s3://bucket/prefix for an S3-compatible bucket, or a folder (path or file:///path); instead of --artifacts-dir")
	fl.StringVar(&a.endpoint, "s3-endpoint", "", "S3 server, http(s)://host[:port] (default AWS, https://s3.amazonaws.com)")
	fl.StringVar(&a.region, "s3-region", "", "the bucket's region (default: asked of the server)")
	fl.BoolVar(&a.pathStyle, "s3-path-style", false, "address the bucket in the URL path, not the host name (SeaweedFS and MinIO need it)")
	fl.StringVar(&a.accessKey, "s3-access-key", "", "S3 access key ID")
	fl.StringVar(&a.secretKey, "s3-secret-key", "", "S3 secret access key (better from the environment than on a command line)")
	fl.StringVar(&a.token, "s3-session-token", "", "S3 session token, with temporary credentials")
}

// check says what is wrong with the flags, before anything starts: both a
// folder and a URL, or a URL of no store.
func (a *artifactFlags) check() error {
	if !strings.HasPrefix(a.url, "s3://") {
		for _, f := range []string{"s3-endpoint", "s3-region", "s3-path-style", "s3-access-key", "s3-secret-key", "s3-session-token"} {
			if a.cmd.Flags().Changed(f) {
				return fmt.Errorf("--%s is for an S3 store: give --artifacts-url s3://bucket/prefix", f)
			}
		}
	}
	if a.url == "" {
		return nil
	}
	if a.hasDir && (a.cmd.Flags().Changed("artifacts-dir") || a.dir != a.defaultDir) {
		return errors.New("--artifacts-dir and --artifacts-url both given: the store is one or the other")
	}
	if scheme, _, ok := strings.Cut(a.url, "://"); ok && scheme != "s3" && scheme != "file" {
		return fmt.Errorf("--artifacts-url %q: want s3://bucket/prefix, file:///path or a folder", a.url)
	}
	return nil
}

// open opens the store the flags name (an S3 bucket is asked whether it
// exists, so wrong credentials fail here).
func (a *artifactFlags) open(ctx context.Context) (artifact.Store, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	if a.url == "" {
		if a.hasDir {
			return artifact.Dir{Root: a.dir}, nil
		}
		return artifact.Dir{Root: a.defaultDir}, nil
	}
	st, err := artifact.Open(ctx, a.url, artifact.S3Options{
		Endpoint: a.endpoint, Region: a.region, PathStyle: a.pathStyle,
		AccessKey: a.accessKey, SecretKey: a.secretKey, SessionToken: a.token,
	})
	if err != nil {
		return nil, fmt.Errorf("--artifacts-url: %w", err)
	}
	return st, nil
}
