package main

// The CLI's config file: named profiles, each a gateway URL and a token,
// so one laptop can talk to several gateways without juggling variables.
// Where a setting comes from, first found wins: the command's flag (--url,
// --token, or the profile --profile names), then JOBGATE_URL /
// JOBGATE_TOKEN (JOBGATE_JOB_TOKEN inside a job), then the profile
// JOBGATE_PROFILE or else current_profile names, then the defaults
// (127.0.0.1:8080 and the token file `jobgate dev` writes).

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"
)

// cliConfig is ~/.config/jobgate/config.yaml.
type cliConfig struct {
	CurrentProfile string             `yaml:"current_profile,omitempty" json:"current_profile"`
	Profiles       map[string]profile `yaml:"profiles,omitempty" json:"profiles"`
}

// profile is where one gateway is and how to authenticate to it.
type profile struct {
	URL   string `yaml:"url,omitempty" json:"url,omitempty"`
	Token string `yaml:"token,omitempty" json:"token,omitempty"`
}

// configPath is the config file: $JOBGATE_CONFIG, else
// $XDG_CONFIG_HOME/jobgate/config.yaml, else ~/.config/jobgate/config.yaml;
// "" when there is no home to put it in.
func configPath(env func(string) string) string {
	if p := env("JOBGATE_CONFIG"); p != "" {
		return p
	}
	if d := env("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "jobgate", "config.yaml")
	}
	if h := env("HOME"); h != "" {
		return filepath.Join(h, ".config", "jobgate", "config.yaml")
	}
	return ""
}

// loadConfig reads the config file; a missing one is an empty config.
// Unknown keys are an error, so a typo (`tokn:`) does not silently send no
// token.
func loadConfig(path string) (*cliConfig, error) {
	cfg := &cliConfig{}
	if path == "" {
		return cfg, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return cfg, nil
	}
	if err := yaml.UnmarshalWithOptions(b, cfg, yaml.Strict()); err != nil {
		return nil, fmt.Errorf("config %s: %s", path, yaml.FormatError(err, false, true))
	}
	return cfg, nil
}

// saveConfig writes cfg to path, readable by its owner only: it holds
// tokens. It goes through a temporary file, so a crash leaves the old
// file or the new one, never half of one.
func saveConfig(path string, cfg *cliConfig) error {
	if path == "" {
		return errors.New("no place for the config file: set JOBGATE_CONFIG, XDG_CONFIG_HOME or HOME")
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.yaml")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	// CreateTemp makes it 0600 already; Chmod says so for whoever reads this.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// connection is the gateway URL and token a command uses, resolved by the
// precedence at the top of this file. A profile named with --profile is a
// flag, so it ranks with --url and --token, above the environment: a
// JOBGATE_TOKEN meant for one gateway must not go to the URL of the
// profile named for another.
func (c *cli) connection(f *connFlags) (url, token string, err error) {
	// bindEnv copies JOBGATE_URL and friends into flags not given; only a
	// Changed flag was on the command line. Without the flag set (a test,
	// a caller that built f itself) every value is a flag's.
	given := func(name, v string) string {
		if f.flags == nil || f.flags.Changed(name) {
			return v
		}
		return ""
	}
	flagURL, flagToken, flagProfile := given("url", f.url), given("token", f.token), given("profile", f.profile)
	envURL := cmp.Or(c.env("JOBGATE_URL"), f.url)
	// Inside a job, its own token works too (for its job and children).
	envToken := cmp.Or(c.env("JOBGATE_TOKEN"), f.token, c.env("JOBGATE_JOB_TOKEN"))
	if flagProfile != "" {
		p, err := c.profile(flagProfile)
		if err != nil {
			return "", "", err
		}
		url, token = cmp.Or(flagURL, p.URL), cmp.Or(flagToken, p.Token)
	} else {
		url, token = cmp.Or(flagURL, envURL), cmp.Or(flagToken, envToken)
		if named := cmp.Or(c.env("JOBGATE_PROFILE"), f.profile); url == "" || token == "" || named != "" {
			p, err := c.profile(named)
			if err != nil {
				return "", "", err
			}
			url, token = cmp.Or(url, p.URL), cmp.Or(token, p.Token)
		}
	}
	if token == "" {
		b, err := os.ReadFile(devTokenFile)
		switch {
		case err == nil:
			token = strings.TrimSpace(string(b))
		case !errors.Is(err, fs.ErrNotExist):
			return "", "", fmt.Errorf("read token: %w", err)
		}
	}
	return cmp.Or(url, defaultGatewayURL), token, nil
}

// profile is the profile named (or the current one when named is ""); no
// config file, or no current profile, is an empty profile, but a name that
// is not in the file is an error rather than a silent fallback to defaults.
func (c *cli) profile(named string) (profile, error) {
	path := configPath(c.env)
	cfg, err := loadConfig(path)
	if err != nil {
		return profile{}, err
	}
	name := cmp.Or(named, cfg.CurrentProfile)
	if name == "" {
		return profile{}, nil
	}
	p, ok := cfg.Profiles[name]
	if !ok {
		return profile{}, fmt.Errorf("no profile %q in %s (jobgate config list shows them)", name, path)
	}
	return p, nil
}

// configCmd is `jobgate config` with set-profile, use and list.
func (c *cli) configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Manage the CLI's profiles (gateway URL and token) in its config file",
		Long: `Profiles live in ~/.config/jobgate/config.yaml ($XDG_CONFIG_HOME/jobgate,
or the file $JOBGATE_CONFIG names), written readable by you alone:

  current_profile: prod
  profiles:
    prod: {url: "https://jobgate.example.com", token: "jg_..."}

A command takes its URL and token from --url/--token (or the profile
--profile names), else JOBGATE_URL/JOBGATE_TOKEN, else the profile
JOBGATE_PROFILE or current_profile names, else http://127.0.0.1:8080 and
./` + devTokenFile + `.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(c.configSetProfileCmd(), c.configUseCmd(), c.configListCmd())
	return cmd
}

func (c *cli) configSetProfileCmd() *cobra.Command {
	var (
		p   profile
		use bool
	)
	cmd := &cobra.Command{
		Use:   "set-profile NAME [--url URL] [--token TOKEN]",
		Short: "Create profile NAME or change the settings given; the first profile becomes the current one",
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = runE("config set-profile", func(_ context.Context, args []string) error {
		path := configPath(c.env)
		cfg, err := loadConfig(path)
		if err != nil {
			return err
		}
		name := args[0]
		if strings.TrimSpace(name) == "" {
			return errors.New("profile name is empty")
		}
		cur, exists := cfg.Profiles[name]
		// Only what is on the command line: JOBGATE_URL in the environment
		// must not be copied into a profile by accident.
		if cmd.Flags().Changed("url") {
			cur.URL = p.URL
		}
		if cmd.Flags().Changed("token") {
			cur.Token = p.Token
		}
		if cfg.Profiles == nil {
			cfg.Profiles = map[string]profile{}
		}
		cfg.Profiles[name] = cur
		if use || cfg.CurrentProfile == "" {
			cfg.CurrentProfile = name
		}
		if err := saveConfig(path, cfg); err != nil {
			return err
		}
		verb := "saved"
		if !exists {
			verb = "created"
		}
		_, err = fmt.Fprintf(c.stdout, "%s profile %s in %s%s\n", verb, name, path, currentMark(cfg, name))
		return err
	})
	fl := cmd.Flags()
	fl.StringVar(&p.URL, "url", "", "gateway base URL")
	fl.StringVar(&p.Token, "token", "", "API token")
	fl.BoolVar(&use, "use", false, "make it the current profile")
	return cmd
}

func currentMark(cfg *cliConfig, name string) string {
	if cfg.CurrentProfile == name {
		return " (current)"
	}
	return ""
}

func (c *cli) configUseCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "use NAME",
		Short: "Make profile NAME the current one",
		Args:  cobra.ExactArgs(1),
	}
	cmd.ValidArgsFunction = func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		cfg, err := loadConfig(configPath(c.env))
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return slices.Sorted(maps.Keys(cfg.Profiles)), cobra.ShellCompDirectiveNoFileComp
	}
	cmd.RunE = runE("config use", func(_ context.Context, args []string) error {
		path := configPath(c.env)
		cfg, err := loadConfig(path)
		if err != nil {
			return err
		}
		if _, ok := cfg.Profiles[args[0]]; !ok {
			return fmt.Errorf("no profile %q in %s (jobgate config set-profile %s --url URL --token TOKEN makes it)", args[0], path, args[0])
		}
		cfg.CurrentProfile = args[0]
		if err := saveConfig(path, cfg); err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.stdout, "using profile %s\n", args[0])
		return err
	})
	return cmd
}

// configListView is `config list --json`: the profiles without their tokens.
type configListView struct {
	Path           string              `json:"path"`
	CurrentProfile string              `json:"current_profile"`
	Profiles       []configProfileView `json:"profiles"`
}

type configProfileView struct {
	Name     string `json:"name"`
	URL      string `json:"url"`
	HasToken bool   `json:"has_token"`
	Current  bool   `json:"current"`
}

func (c *cli) configListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the profiles (tokens are not shown)",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = runE("config list", func(_ context.Context, _ []string) error {
		path := configPath(c.env)
		cfg, err := loadConfig(path)
		if err != nil {
			return err
		}
		v := configListView{Path: path, CurrentProfile: cfg.CurrentProfile, Profiles: []configProfileView{}}
		for _, name := range slices.Sorted(maps.Keys(cfg.Profiles)) {
			p := cfg.Profiles[name]
			v.Profiles = append(v.Profiles, configProfileView{Name: name, URL: p.URL, HasToken: p.Token != "", Current: name == cfg.CurrentProfile})
		}
		if asJSON {
			return writeJSON(c.stdout, v)
		}
		if len(v.Profiles) == 0 {
			fmt.Fprintf(c.stderr, "no profiles in %s (jobgate config set-profile NAME --url URL --token TOKEN makes one)\n", path)
			return nil
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CURRENT\tNAME\tURL\tTOKEN")
		for _, p := range v.Profiles {
			mark, tok := "", "-"
			if p.Current {
				mark = "*"
			}
			if p.HasToken {
				tok = "set"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", mark, p.Name, cmp.Or(p.URL, "-"), tok)
		}
		return tw.Flush()
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of text")
	return cmd
}
