package main

import (
	"cmp"
	"context"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildVersion is what `jobgate version` reports, from the build's own
// record: the module version (a tag with `go install ...@v1.2.3`,
// "(devel)" from a checkout) and the VCS commit go build stamps.
type buildVersion struct {
	Version    string `json:"version"`
	Commit     string `json:"commit,omitempty"`
	CommitTime string `json:"commit_time,omitempty"`
	// Modified: the working tree had uncommitted changes.
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

func readBuildVersion() buildVersion {
	v := buildVersion{Version: "(unknown)", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Version = cmp.Or(bi.Main.Version, v.Version)
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.CommitTime = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func (c *cli) versionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{Use: "version", Short: "Print the version, commit and Go version of this binary", Args: cobra.NoArgs}
	cmd.RunE = runE("version", func(context.Context, []string) error {
		v := readBuildVersion()
		if asJSON {
			return writeJSON(c.stdout, v)
		}
		commit := cmp.Or(v.Commit, "-")
		if v.Modified {
			commit += " (modified)"
		}
		return writeFields(c.stdout, [][2]string{{"version", v.Version}, {"commit", commit}, {"commit time", v.CommitTime},
			{"go", v.GoVersion}, {"platform", v.Platform}})
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of text")
	return cmd
}
