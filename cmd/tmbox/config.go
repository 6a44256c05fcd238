package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// Config file identity.
const (
	configAPIVersion = "tmbox.dev/v1alpha1"
	configKind       = "InstallConfig"
	envPrefix        = "TMBOX_"
)

// notSettings are flags that are not settings: they never come from a
// config file or the environment.
func notSettings() []string { return []string{"help", "config", "version"} }

// envName is a flag's environment variable: --skip-phases → TMBOX_SKIP_PHASES.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// configKey is a flag's config file key: --skip-phases → skipPhases.
func configKey(flag string) string {
	parts := strings.Split(flag, "-")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

// configSetting is one key of a config file.
type configSetting struct {
	value string
	line  int
}

// readConfig decodes an InstallConfig strictly: apiVersion and kind must
// match, every other key must be a setting (known), and values are scalars
// or lists of scalars. Errors name the file and line.
func readConfig(path string, known map[string]bool) (map[string]configSetting, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	return readConfigBytes(data, path, known)
}

// readConfigBytes is readConfig of data read from path.
func readConfigBytes(data []byte, path string, known map[string]bool) (map[string]configSetting, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: empty config (want apiVersion: %s, kind: %s)", path, configAPIVersion, configKind)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: a config is a mapping of settings", path, root.Line)
	}
	out := map[string]configSetting{}
	var apiVersion, kind string
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "apiVersion":
			apiVersion = v.Value
			if v.Value != configAPIVersion {
				return nil, fmt.Errorf("%s:%d: apiVersion %q, want %s", path, v.Line, v.Value, configAPIVersion)
			}
			continue
		case "kind":
			kind = v.Value
			if v.Value != configKind {
				return nil, fmt.Errorf("%s:%d: kind %q, want %s", path, v.Line, v.Value, configKind)
			}
			continue
		}
		if !known[k.Value] {
			keys := make([]string, 0, len(known))
			for key := range known {
				keys = append(keys, key)
			}
			sort.Strings(keys)
			return nil, fmt.Errorf("%s:%d: unknown key %q (known: %s)", path, k.Line, k.Value, strings.Join(keys, ", "))
		}
		if _, dup := out[k.Value]; dup {
			return nil, fmt.Errorf("%s:%d: %s is set twice", path, k.Line, k.Value)
		}
		switch v.Kind {
		case yaml.ScalarNode:
			out[k.Value] = configSetting{value: v.Value, line: v.Line}
		case yaml.SequenceNode:
			var items []string
			for _, it := range v.Content {
				if it.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("%s:%d: %s: want a list of plain values", path, it.Line, k.Value)
				}
				items = append(items, it.Value)
			}
			out[k.Value] = configSetting{value: strings.Join(items, ","), line: v.Line}
		default:
			return nil, fmt.Errorf("%s:%d: %s: want a value or a list of values", path, v.Line, k.Value)
		}
	}
	if apiVersion == "" || kind == "" {
		return nil, fmt.Errorf("%s: want apiVersion: %s and kind: %s", path, configAPIVersion, configKind)
	}
	return out, nil
}

// settingFlags lists the flags of cmd that are settings.
func settingFlags(cmd *cobra.Command) []*pflag.Flag {
	var out []*pflag.Flag
	_ = cmd.InheritedFlags() // merges the persistent flags into Flags()
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		for _, n := range notSettings() {
			if f.Name == n {
				return
			}
		}
		out = append(out, f)
	})
	return out
}

// configSettingFlag is one setting an InstallConfig may hold, with the
// first command (install, then upgrade) that takes it.
type configSettingFlag struct {
	flag    *pflag.Flag
	command string
}

// installConfigSettings lists the settings of install and upgrade and the
// global flags, each once, in a stable order.
func installConfigSettings(g *globalOptions) []configSettingFlag {
	var out []configSettingFlag
	seen := map[string]bool{}
	for _, c := range []*cobra.Command{newInstallCmd(g), newUpgradeCmd(g)} {
		root := &cobra.Command{Use: "tmbox"}
		addGlobalFlags(root, &globalOptions{})
		root.AddCommand(c)
		for _, f := range settingFlags(c) {
			if !seen[f.Name] {
				seen[f.Name] = true
				out = append(out, configSettingFlag{flag: f, command: c.Name()})
			}
		}
	}
	return out
}

// knownConfigKeys are the keys an InstallConfig may hold.
func knownConfigKeys(g *globalOptions) map[string]bool {
	known := map[string]bool{}
	for _, s := range installConfigSettings(g) {
		known[configKey(s.flag.Name)] = true
	}
	return known
}

// applySettings fills the flags the command line left unset from the
// environment (TMBOX_<FLAG>), then from the config file: flags > env >
// file > defaults.
func applySettings(cmd *cobra.Command, g *globalOptions) error {
	if g.configFile == "" {
		g.configFile = os.Getenv(envName("config"))
	}
	var file map[string]configSetting
	if g.configFile != "" {
		var err error
		if file, err = readConfig(g.configFile, knownConfigKeys(g)); err != nil {
			return &usageError{err}
		}
	}
	var errs []error
	for _, f := range settingFlags(cmd) {
		if f.Changed {
			continue
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if err := cmd.Flags().Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", envName(f.Name), v, err))
			}
			continue
		}
		if s, ok := file[configKey(f.Name)]; ok {
			if err := cmd.Flags().Set(f.Name, s.value); err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: %s: %w", g.configFile, s.line, configKey(f.Name), err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return &usageError{err}
	}
	return nil
}

func newConfigCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Config files for unattended runs",
		Args:  noArgs,
	}
	var out string
	initCmd := &cobra.Command{
		Use:   "init [-o FILE]",
		Short: "Write a commented example InstallConfig (every setting, with its flag and env var)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			text := exampleConfig(g)
			if out == "" {
				_, err := fmt.Fprint(cmd.OutOrStdout(), text)
				return err
			}
			return writeNew(out, []byte(text), 0o644)
		},
	}
	initCmd.Flags().StringVarP(&out, "output-file", "o", "", "write to FILE (must not exist) instead of stdout")
	cmd.AddCommand(initCmd)
	return cmd
}

// exampleConfig renders every setting of install (and upgrade), commented
// out, with its flag, env var and default.
func exampleConfig(g *globalOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# tmbox InstallConfig: use with tmbox install|upgrade|preflight --config FILE (or TMBOX_CONFIG).\n")
	fmt.Fprintf(&b, "# Command-line flags win over TMBOX_* environment variables, which win over this file, which wins over the defaults.\n")
	fmt.Fprintf(&b, "# Unknown keys are errors. Lists are YAML lists.\napiVersion: %s\nkind: %s\n", configAPIVersion, configKind)
	for _, s := range installConfigSettings(g) {
		f := s.flag
		fmt.Fprintf(&b, "\n# %s\n# (--%s, %s; used by %s)\n", f.Usage, f.Name, envName(f.Name), s.command)
		def := f.DefValue
		if f.Value.Type() == "stringSlice" {
			def = strings.Trim(def, "[]")
			if def == "" {
				fmt.Fprintf(&b, "# %s: []\n", configKey(f.Name))
				continue
			}
			fmt.Fprintf(&b, "# %s: [%s]\n", configKey(f.Name), def)
			continue
		}
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(&b, "# %s: %s\n", configKey(f.Name), def)
	}
	return b.String()
}
