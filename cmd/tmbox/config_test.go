package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/tmbox/tmbox/installer"
	"github.com/tmbox/tmbox/installer/settings"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cfg.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"unknown key", "apiVersion: tmbox.dev/v1alpha1\nkind: InstallConfig\nrelease: \"1.21\"\ncolour: blue\n", `cfg.yaml:4: unknown key "colour"`},
		{"wrong apiVersion", "apiVersion: tmbox.dev/v2\nkind: InstallConfig\n", `cfg.yaml:1: apiVersion "tmbox.dev/v2"`},
		{"wrong kind", "apiVersion: tmbox.dev/v1alpha1\nkind: Cluster\n", `cfg.yaml:2: kind "Cluster"`},
		{"missing kind", "apiVersion: tmbox.dev/v1alpha1\nrelease: \"1.21\"\n", "want apiVersion: tmbox.dev/v1alpha1 and kind: InstallConfig"},
		{"nested value", "apiVersion: tmbox.dev/v1alpha1\nkind: InstallConfig\nrelease: {a: b}\n", "cfg.yaml:3: release: want a value"},
		{"bad value", "apiVersion: tmbox.dev/v1alpha1\nkind: InstallConfig\nworkers: many\n", "cfg.yaml:3: workers"},
		{"twice", "apiVersion: tmbox.dev/v1alpha1\nkind: InstallConfig\nrelease: \"1.21\"\nrelease: \"1.22\"\n", "cfg.yaml:4: release is set twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noEngineHost(t)
			_, _, err := run(t, "preflight", "--config", writeConfig(t, tt.text))
			if code := exitCode(context.Background(), err); code != exitUsage {
				t.Errorf("exit code %d, want %d (err %v)", code, exitUsage, err)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestConfigPrecedence: flags > env > file > defaults, observed through the
// kind cluster name preflight reports.
func TestConfigPrecedence(t *testing.T) {
	cfg := "apiVersion: tmbox.dev/v1alpha1\nkind: InstallConfig\nclusterName: fromfile\ncreateCluster: true\nignorePreflightErrors: [all]\noutput: json\n"
	tests := []struct {
		name string
		env  string
		args []string
		want string
	}{
		{"default", "", nil, "kind cluster tmbox on this host"},
		{"file", "", []string{"--config", "CFG"}, "kind cluster fromfile on this host"},
		{"env over file", "fromenv", []string{"--config", "CFG"}, "kind cluster fromenv on this host"},
		{"flag over env", "fromenv", []string{"--config", "CFG", "--cluster-name", "fromflag"}, "kind cluster fromflag on this host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noEngineHost(t)
			path := writeConfig(t, cfg)
			if tt.env != "" {
				t.Setenv("TMBOX_CLUSTER_NAME", tt.env)
			}
			args := []string{"preflight", "--create-cluster", "-o", "json"}
			for _, a := range tt.args {
				args = append(args, strings.ReplaceAll(a, "CFG", path))
			}
			out, _, err := run(t, args...)
			var doc preflightOutput
			if jerr := json.Unmarshal([]byte(out), &doc); jerr != nil {
				t.Fatalf("%v (err %v)\n%s", jerr, err, out)
			}
			if doc.Target != tt.want {
				t.Errorf("target %q, want %q", doc.Target, tt.want)
			}
			// The file's ignorePreflightErrors: [all] applies with it.
			if fromFile := len(tt.args) > 0; fromFile != (err == nil) {
				t.Errorf("err %v with config=%v", err, fromFile)
			}
		})
	}
}

// settingLine is a commented-out setting of the example config.
var settingLine = regexp.MustCompile(`^# ([a-zA-Z]+: .*)$`)

func TestConfigInit(t *testing.T) {
	out, _, err := run(t, "config", "init")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"apiVersion: tmbox.dev/v1alpha1", "kind: InstallConfig", "# (--skip-phases, TMBOX_SKIP_PHASES; used by install)", "# skipPhases: []", "# registry: \"\"", "# to: \"\""} {
		if !strings.Contains(out, want) {
			t.Errorf("config init lacks %q", want)
		}
	}
	// The example is a valid config as written, and with every key
	// uncommented (values as documented) it still decodes.
	noEngineHost(t)
	var b strings.Builder
	for _, line := range strings.Split(out, "\n") {
		if m := settingLine.FindStringSubmatch(line); m != nil {
			line = m[1]
		}
		b.WriteString(line + "\n")
	}
	known := knownConfigKeys(&globalOptions{})
	if _, err := readConfig(writeConfig(t, b.String()), known); err != nil {
		t.Errorf("the uncommented example does not decode: %v\n%s", err, b.String())
	}
}

// TestIntegrationUnattended: install from a config file with --yes and
// JSON output prints only JSON lines ending in a success result; a config
// with an unknown key exits with the usage code before any write.
func TestIntegrationUnattended(t *testing.T) {
	c := suite.Cluster(t)
	cfg := writeConfig(t, "apiVersion: tmbox.dev/v1alpha1\nkind: InstallConfig\nrelease: \"1.21\"\nmirror: "+upstreamDir(t)+"\nkubeconfig: "+c.Kubeconfig+"\ncomponents: [istio, knative-serving, net-istio]\ntimeout: 2m\n")
	out, errOut, err := run(t, "install", "--config", cfg, "--yes", "--output", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var last installer.Event
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &last); err != nil {
			t.Fatalf("stdout line %d is not JSON: %q", i+1, l)
		}
	}
	if last.Type != installer.EventResult || last.Result != installer.ResultSucceeded || last.ExitCode == nil || *last.ExitCode != 0 {
		t.Errorf("last event %+v, want a success result", last)
	}
	t.Logf("%d JSON events", len(lines))

	bad := writeConfig(t, "apiVersion: tmbox.dev/v1alpha1\nkind: InstallConfig\nrelease: \"1.21\"\nkubeconfig: "+c.Kubeconfig+"\nreplicas: 3\n")
	before := clusterVersions(t, c.Config)
	out, _, err = run(t, "install", "--config", bad, "--yes", "--output", "json")
	if code := exitCode(context.Background(), err); code != exitUsage || !strings.Contains(err.Error(), `cfg.yaml:5: unknown key "replicas"`) {
		t.Errorf("exit code %d, err %v", code, err)
	}
	if strings.Contains(out, "phase-start") {
		t.Errorf("a refused config started phases:\n%s", out)
	}
	after := clusterVersions(t, c.Config)
	for k, v := range after {
		if before[k] != v {
			t.Errorf("a refused config wrote %s", k)
		}
	}
}

// TestConfigRefusesDuplicatesAndDocuments: a key set twice (apiVersion
// and kind included) and a second YAML document are refused with file:line
// (hardening item 6).
func TestConfigRefusesDuplicatesAndDocuments(t *testing.T) {
	const head = "apiVersion: tmbox.dev/v1alpha1\nkind: InstallConfig\n"
	tests := []struct{ name, text, want string }{
		{"apiVersion twice", head + "apiVersion: tmbox.dev/v1alpha1\n", "cfg.yaml:3: apiVersion is set twice (first at line 1)"},
		{"kind twice", head + "release: \"1.21\"\nkind: InstallConfig\n", "cfg.yaml:4: kind is set twice (first at line 2)"},
		{"second document", head + "release: \"1.21\"\n---\nrelease: \"1.22\"\n", "cfg.yaml:4: a config is one YAML document"},
		{"second empty document", head + "---\n", "cfg.yaml:3: a config is one YAML document"},
		{"second document that does not parse", head + "---\nrelease: [\n", "cfg.yaml: a config is one YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noEngineHost(t)
			_, _, err := run(t, "preflight", "--config", writeConfig(t, tt.text))
			if code := exitCode(context.Background(), err); code != exitUsage {
				t.Errorf("exit code %d, want %d (err %v)", code, exitUsage, err)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
	// A leading "---" and a document end marker are still one document.
	for _, text := range []string{"---\n" + head, head + "...\n"} {
		if _, err := readConfig(writeConfig(t, text), knownConfigKeys(&globalOptions{})); err != nil {
			t.Errorf("%q: %v", text, err)
		}
	}
}

// TestConfigQuotesShort: a long value (or key) is quoted as a short
// prefix in errors, not echoed whole (hardening item 14).
func TestConfigQuotesShort(t *testing.T) {
	const head = "apiVersion: tmbox.dev/v1alpha1\nkind: InstallConfig\n"
	long := strings.Repeat("x", 500<<10)
	prefix := `"` + strings.Repeat("x", 64) + `"…`
	tests := []struct{ name, text, env, want string }{
		{"release", head + "release: \"" + long + "\"\n", "", "unknown release " + prefix},
		{"bad value", head + "workers: " + long + "\n", "", "cfg.yaml:3: workers: invalid int value " + prefix},
		{"unknown key", head + "? " + long + "\n: 1\n", "", "cfg.yaml:3: unknown key " + prefix}, // an explicit key: implicit ones are short
		{"apiVersion", "apiVersion: " + long + "\nkind: InstallConfig\n", "", "cfg.yaml:1: apiVersion " + prefix},
		{"kind", "apiVersion: tmbox.dev/v1alpha1\nkind: " + long + "\n", "", "cfg.yaml:2: kind " + prefix},
		{"environment", head, long, "TMBOX_WORKERS=" + prefix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noEngineHost(t)
			if tt.env != "" {
				t.Setenv("TMBOX_WORKERS", tt.env)
			}
			_, _, err := run(t, "preflight", "--config", writeConfig(t, tt.text))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %.400v, want %q", err, tt.want)
			}
			if n := len(err.Error()); n > 2000 {
				t.Errorf("error of %d bytes echoes the value: %.300s", n, err)
			}
		})
	}
}

// TestConfigSizeLimit: a config larger than 1 MiB is refused, naming the
// file and the limit (hardening item 16).
func TestConfigSizeLimit(t *testing.T) {
	noEngineHost(t)
	big := writeConfig(t, "apiVersion: tmbox.dev/v1alpha1\nkind: InstallConfig\n# "+strings.Repeat("x", 1<<20)+"\n")
	_, _, err := run(t, "preflight", "--config", big)
	if code := exitCode(context.Background(), err); code != exitUsage || !strings.Contains(err.Error(), big) || !strings.Contains(err.Error(), "limit of 1 MiB") {
		t.Errorf("exit code %d, error %v", code, err)
	}
}

// FuzzReadConfig: the config decoder never panics, and what it accepts
// holds only known keys.
func FuzzReadConfig(f *testing.F) {
	known := knownConfigKeys(&globalOptions{})
	const head = "apiVersion: tmbox.dev/v1alpha1\nkind: InstallConfig\n"
	f.Add([]byte(head + "release: \"1.21\"\ncomponents: [istio, knative-serving]\nworkers: 2\n"))
	f.Add([]byte(exampleConfig(&globalOptions{})))
	f.Add([]byte(head + "release: \"1.21\"\nrelease: \"1.22\"\n"))
	f.Add([]byte(head + "---\n" + head))
	f.Add([]byte(head + "release: {a: b}\n"))
	f.Add([]byte(head + "release: &a x\nmirror: *a\n<<: {b: c}\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Add([]byte(""))
	f.Add([]byte("apiVersion: [x]\nkind: {y: z}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := readConfigBytes(data, "fuzz.yaml", known)
		if err != nil {
			if out != nil {
				t.Fatal("settings returned with an error")
			}
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for k := range out {
			if !known[k] {
				t.Fatalf("unknown key %q accepted", k)
			}
		}
	})
}

// TestConfigPlatformErrors: the platform: section is decoded strictly,
// with file:line, before anything runs (issue 15's refusals that are the
// config's own: unknown keys, a list as a ConfigMap value, bad shapes),
// and a platform flag is not a top-level key.
func TestConfigPlatformErrors(t *testing.T) {
	const head = "apiVersion: tmbox.dev/v1alpha1\nkind: InstallConfig\n"
	tests := []struct{ name, text, want string }{
		{"unknown top-level key", head + "domain: example.com\n", `cfg.yaml:3: unknown key "domain"`},
		{"unknown platform key", head + "platform:\n  domian: example.com\n", "cfg.yaml:4"},
		{"list as a ConfigMap value", head + "platform:\n  config:\n    config-autoscaler:\n      enable-scale-to-zero: [a, b]\n", "cfg.yaml:6"},
		{"platform not a mapping", head + "platform: yes\n", "cfg.yaml:3: platform: want a mapping"},
		{"negative replicas", head + "platform:\n  workloads:\n    knative-serving/activator:\n      replicas: -1\n", "cfg.yaml:6"},
		{"bad domain", head + "platform:\n  domain: Not_A_Domain\n", "cfg.yaml:4: platform.domain"},
		{"tls without key", head + "platform:\n  tls:\n    certFile: x.crt\n", "platform.tls"},
		{"set twice", head + "platform:\n  domain: a.example.com\n  domain: b.example.com\n", "cfg.yaml:5"},
		{"bad gateway type", head + "platform:\n  gateway:\n    type: Ingress\n", "cfg.yaml:5: platform.gateway.type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noEngineHost(t)
			_, _, err := run(t, "preflight", "--config", writeConfig(t, tt.text))
			if code := exitCode(context.Background(), err); code != exitUsage {
				t.Errorf("exit code %d, want %d (err %v)", code, exitUsage, err)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestPlatformFlagsOverConfig: a platform flag (or its TMBOX_* variable)
// wins over the config file's platform: value, which is kept otherwise.
func TestPlatformFlagsOverConfig(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	var pf platformFlags
	addPlatformFlags(fs, &pf)
	if err := fs.Parse([]string{"--domain", "flag.example.com", "--ha-replicas", "3"}); err != nil {
		t.Fatal(err)
	}
	file := settings.Settings{Domain: "file.example.com", TLS: &settings.TLS{CertFile: "a.crt", KeyFile: "a.key"}, HighAvailability: &settings.HighAvailability{Replicas: 2}}
	got := pf.settings(fs, file)
	if got.Domain != "flag.example.com" || got.HighAvailability.Replicas != 3 || got.TLS == nil || got.TLS.CertFile != "a.crt" {
		t.Errorf("settings %+v", got)
	}
	if file.Domain != "file.example.com" || file.HighAvailability.Replicas != 2 {
		t.Errorf("the file's settings were changed: %+v", file)
	}
}
