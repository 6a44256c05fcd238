package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer"
	"github.com/tmbox/tmbox/installer/addons"
	"github.com/tmbox/tmbox/installer/settings"
)

// Config file identity.
const (
	configAPIVersion = "tmbox.dev/v1alpha1"
	configKind       = "InstallConfig"
	envPrefix        = "TMBOX_"
)

// maxConfigSize is the largest config file tmbox reads, in bytes.
const maxConfigSize = 1 << 20

// maxQuotedValue is the longest value an error quotes whole; longer ones
// are quoted as a prefix (catalog.QuoteShort).
const maxQuotedValue = 64

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
	// list is set when the file gave a YAML list.
	list bool
	// platform is the decoded platform: section (key "platform" only).
	platform *settings.Settings
	// addons is the decoded addons: list (key "addons" only).
	addons []addons.Addon
	// images is the decoded images: map (key "images" only).
	images map[string]string
}

// platformKey is the config file's section of platform settings,
// addonsKey its list of add-ons.
const (
	platformKey = "platform"
	addonsKey   = "addons"
)

// readConfig decodes an InstallConfig strictly: one YAML document, at
// most maxConfigSize bytes, apiVersion and kind must match, every other
// key must be a setting (known), no key may be set twice, and values are
// scalars or lists of scalars. Errors name the file and line, and quote at
// most a short prefix of a value.
func readConfig(path string, known map[string]bool) (map[string]configSetting, error) {
	data, err := catalog.ReadLimited(path, maxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	return readConfigBytes(data, path, known)
}

// readConfigBytes is readConfig of data read from path.
func readConfigBytes(data []byte, path string, known map[string]bool) (map[string]configSetting, error) {
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("%s: %d bytes, more than the limit of %s for a config", path, len(data), catalog.SizeString(maxConfigSize))
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: empty config (want apiVersion: %s, kind: %s)", path, configAPIVersion, configKind)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("%s: a config is one YAML document: after the first: %w", path, err)
		}
		return nil, fmt.Errorf("%s:%d: a config is one YAML document; a second one starts here", path, next.Line)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: a config is a mapping of settings", path, root.Line)
	}
	out := map[string]configSetting{}
	seen := map[string]int{} // key → line it was first set
	var apiVersion, kind string
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "apiVersion" && k.Value != "kind" && !known[k.Value] {
			keys := make([]string, 0, len(known))
			for key := range known {
				keys = append(keys, key)
			}
			sort.Strings(keys)
			return nil, fmt.Errorf("%s:%d: unknown key %s (known: %s)", path, k.Line, catalog.QuoteShort(k.Value), strings.Join(keys, ", "))
		}
		if first, dup := seen[k.Value]; dup {
			return nil, fmt.Errorf("%s:%d: %s is set twice (first at line %d)", path, k.Line, k.Value, first)
		}
		seen[k.Value] = k.Line
		switch k.Value {
		case "apiVersion":
			apiVersion = v.Value
			if v.Kind != yaml.ScalarNode || v.Value != configAPIVersion {
				return nil, fmt.Errorf("%s:%d: apiVersion %s, want %s", path, v.Line, catalog.QuoteShort(v.Value), configAPIVersion)
			}
			continue
		case "kind":
			kind = v.Value
			if v.Kind != yaml.ScalarNode || v.Value != configKind {
				return nil, fmt.Errorf("%s:%d: kind %s, want %s", path, v.Line, catalog.QuoteShort(v.Value), configKind)
			}
			continue
		}
		if k.Value == imagesKey {
			m, err := installer.DecodeImageOverrides(v, path, imagesKey)
			if err != nil {
				return nil, err // file:line: images[original]: …
			}
			out[k.Value] = configSetting{line: v.Line, images: m}
			continue
		}
		if k.Value == addonsKey {
			if v.Kind != yaml.SequenceNode {
				return nil, fmt.Errorf("%s:%d: addons: want a list of add-ons (see docs/addons.md)", path, v.Line)
			}
			list, err := addons.Decode(v, path)
			if err != nil {
				return nil, err // file:line: addons[i].…: …
			}
			out[k.Value] = configSetting{line: v.Line, addons: list}
			continue
		}
		if k.Value == platformKey {
			if v.Kind != yaml.MappingNode {
				return nil, fmt.Errorf("%s:%d: platform: want a mapping of settings (see docs/configuration.md)", path, v.Line)
			}
			p, err := settings.Decode(v, path)
			if err != nil {
				return nil, err // file:line: platform.…: …
			}
			out[k.Value] = configSetting{line: v.Line, platform: &p}
			continue
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
			out[k.Value] = configSetting{value: strings.Join(items, ","), line: v.Line, list: true}
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
	known := map[string]bool{platformKey: true, addonsKey: true, imagesKey: true}
	for _, s := range installConfigSettings(g) {
		if !isPlatformFlag(s.flag) {
			known[configKey(s.flag.Name)] = true
		}
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
		if p := file[platformKey].platform; p != nil {
			g.platform = *p
		}
		g.addons = file[addonsKey].addons
	}
	var errs []error
	for _, f := range settingFlags(cmd) {
		if f.Changed {
			continue
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if err := cmd.Flags().Set(f.Name, v); err != nil {
				errs = append(errs, settingError(envName(f.Name)+"="+catalog.QuoteShort(v), f, v, err))
			}
			continue
		}
		if s, ok := file[configKey(f.Name)]; ok && !isPlatformFlag(f) {
			if s.list && !strings.HasSuffix(f.Value.Type(), "Slice") {
				errs = append(errs, fmt.Errorf("%s:%d: %s: want one value, not a list", g.configFile, s.line, configKey(f.Name)))
				continue
			}
			if err := cmd.Flags().Set(f.Name, s.value); err != nil {
				errs = append(errs, settingError(fmt.Sprintf("%s:%d: %s", g.configFile, s.line, configKey(f.Name)), f, s.value, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return &usageError{err}
	}
	// The image overrides: images: with --image-map's file over it.
	if err := g.loadImageOverrides(file[imagesKey].images); err != nil {
		return &usageError{err}
	}
	return nil
}

// settingError reports a value that flag f refused, after where (the
// variable or file:line and key). The flag's own error quotes the value
// whole, so for a long value it is replaced by the flag's type and a short
// prefix of the value.
func settingError(where string, f *pflag.Flag, value string, err error) error {
	if len(value) <= maxQuotedValue {
		return fmt.Errorf("%s: %w", where, err)
	}
	return fmt.Errorf("%s: invalid %s value %s for --%s", where, f.Value.Type(), catalog.QuoteShort(value), f.Name)
}

func newConfigCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Config files for unattended runs",
		Args:  noArgs,
	}
	var out, output string
	initCmd := &cobra.Command{
		Use:   "init [--file FILE]",
		Short: "Write a commented example InstallConfig (every setting, with its flag and env var)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			text := exampleConfig(g)
			if out == "" {
				_, err := fmt.Fprint(cmd.OutOrStdout(), text)
				return err
			}
			if _, err := os.Lstat(out); err == nil {
				return &usageError{fmt.Errorf("--file %s exists: tmbox config init never replaces a file", catalog.ShortPath(out))}
			}
			return writeNew(out, []byte(text), 0o644)
		},
	}
	initCmd.Flags().StringVar(&out, "file", "", "write to FILE (must not exist) instead of stdout")
	deprecatedAlias(initCmd, "output-file", "file")
	// The example is YAML with comments: yaml is its only format.
	outputFlag(initCmd, &output, formatYAML).movedTo("--file FILE")
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
		if isPlatformFlag(f) {
			continue
		}
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
	b.WriteString(examplePlatform)
	b.WriteString(exampleImages)
	return b.String()
}

// examplePlatform is the platform: section of the example config: every
// setting, commented out (docs/configuration.md explains each). The flags
// that set the common ones are named beside them.
const examplePlatform = `
# Platform settings, kept in the cluster and applied by every later install,
# upgrade hop and tmbox configure (see docs/configuration.md).
# platform:
#   domain: example.com              # --domain, TMBOX_DOMAIN
#   tls:
#     certFile: /etc/tmbox/tls.crt   # --tls-cert
#     keyFile: /etc/tmbox/tls.key    # --tls-key
#     redirectHTTP: true             # --tls-redirect-http
#   registry:
#     pullSecret: /etc/tmbox/config.json  # --pull-secret (Docker config JSON)
#     caFile: /etc/tmbox/registry-ca.pem  # --registry-ca
#     skipTagResolving: [registry.internal:5000]
#   highAvailability:
#     replicas: 3                    # --ha-replicas
#   config:
#     config-autoscaler:
#       enable-scale-to-zero: "true"
#     knative-eventing/config-features:
#       new-trigger-filters: enabled
#   workloads:
#     knative-serving/activator:
#       replicas: 2
#       containers:
#         activator:
#           resources: {requests: {cpu: 500m, memory: 256Mi}}
#       nodeSelector: {node-role.example.com/serverless: "true"}
#   gateway:
#     type: LoadBalancer             # --gateway-type
#     loadBalancerIP: 192.0.2.10
#     annotations: {service.beta.kubernetes.io/aws-load-balancer-internal: "true"}

# Add-ons: your own Helm charts, installed after the stack and upgraded with it
# (see docs/addons.md).
# addons:
# - name: tenant-gateway
#   chart: ./charts/gateway-1.30.3.tgz      # a .tgz, a chart directory, or oci://… with version and digest
#   namespace: tenant
#   valuesFiles: [tenant-values.yaml]
#   values: {replicaCount: 2}
#   timeout: 5m
`

// exampleImages is the images: section of the example config (see
// docs/configuration.md).
const exampleImages = `
# Image overrides: original reference → replacement pinned by digest, applied
# wherever the release names the original (containers, env values, ConfigMap
# values), kept in the cluster's state and by upgrades (see docs/configuration.md;
# --image-map FILE takes the same mapping from a file).
# images:
#   gcr.io/triggermesh/triggermesh-controller:v1.27.0: registry.example.com/triggermesh/triggermesh-controller@sha256:<64 hex digits>
`
