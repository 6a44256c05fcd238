//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/yaml"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer"
	"github.com/tmbox/tmbox/tui"
)

// TestOutputFlagEverywhere audits the command tree: every -o is the
// output format (the shared outputValue, from the one set of formats),
// no other flag has the shorthand -o, and the old path spellings are
// hidden, deprecated aliases of the flags that took over.
func TestOutputFlagEverywhere(t *testing.T) {
	root := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	var withOutput []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			switch {
			case f.Name == "output":
				v, ok := f.Value.(*outputValue)
				if !ok || f.Shorthand != "o" {
					t.Errorf("%s: --output is a %T with shorthand %q, want the shared format flag -o", c.CommandPath(), f.Value, f.Shorthand)
					return
				}
				for _, format := range v.formats {
					if !slices.Contains(allFormats(), format) {
						t.Errorf("%s: -o %s is not one of the shared formats %v", c.CommandPath(), format, allFormats())
					}
				}
				withOutput = append(withOutput, c.CommandPath())
			case f.Shorthand == "o":
				t.Errorf("%s: --%s has the shorthand -o, which is the output format", c.CommandPath(), f.Name)
			case f.Name == "output-file" || f.Name == "output-dir" && c.Name() != "render":
				if f.Deprecated == "" || !f.Hidden {
					t.Errorf("%s: --%s is an old spelling: it must be a hidden, deprecated alias", c.CommandPath(), f.Name)
				}
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for _, want := range []string{"tmbox render", "tmbox bundle create", "tmbox bundle inspect", "tmbox bundle keygen", "tmbox plan", "tmbox status",
		"tmbox preflight", "tmbox version", "tmbox versions", "tmbox install", "tmbox upgrade", "tmbox uninstall", "tmbox configure",
		"tmbox mirror create", "tmbox support-bundle", "tmbox config init"} {
		if !slices.Contains(withOutput, want) {
			t.Errorf("%s has no -o/--output format flag (commands with one: %v)", want, withOutput)
		}
	}
}

// TestOutputFormats runs the offline commands in every format: text is
// what it was, json and yaml decode (and hold the same document).
func TestOutputFormats(t *testing.T) {
	mirror := upstreamDir(t)
	tests := []struct {
		name string
		args func(dir string) []string
		// key is a top-level key of the json/yaml document.
		key string
	}{
		{"version", func(string) []string { return []string{"version"} }, "goVersion"},
		{"versions", func(string) []string { return []string{"versions"} }, "releases"},
		{"plan", func(string) []string { return []string{"plan", "--from", "1.21", "--to", "1.22"} }, "hops"},
		{"render", func(dir string) []string {
			return []string{"render", "--release", "1.21", "--components", "knative-serving", "--mirror", mirror, "--output-dir", filepath.Join(dir, "r")}
		}, "files"},
		{"keygen", func(dir string) []string { return []string{"bundle", "keygen", "--prefix", filepath.Join(dir, "k")} }, "publicKey"},
	}
	for _, tt := range tests {
		for _, format := range allFormats() {
			t.Run(tt.name+"/"+format, func(t *testing.T) {
				out, errOut, err := run(t, append(tt.args(t.TempDir()), "-o", format)...)
				if err != nil {
					t.Fatalf("%v\n%s", err, errOut)
				}
				var doc map[string]any
				switch format {
				case formatJSON:
					err = json.Unmarshal([]byte(out), &doc)
				case formatYAML:
					err = yaml.Unmarshal([]byte(out), &doc)
				default:
					if json.Valid([]byte(out)) || strings.TrimSpace(out) == "" {
						t.Errorf("text output is empty or JSON:\n%s", out)
					}
					return
				}
				if err != nil || doc[tt.key] == nil {
					t.Errorf("-o %s: %v, no key %q in\n%s", format, err, tt.key, out)
				}
			})
		}
	}
	// render -o json names every file it wrote.
	dir := t.TempDir()
	out, _, err := run(t, "render", "--release", "1.21", "--components", "istio,knative-serving,net-istio", "--mirror", mirror, "--output-dir", dir, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Files []renderedFile }
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Files) < 3 {
		t.Fatalf("render -o json: %v\n%s", err, out)
	}
	for _, f := range doc.Files {
		if _, err := os.Stat(filepath.Join(dir, f.File)); err != nil {
			t.Errorf("render listed %s: %v", f.File, err)
		}
	}
}

// TestDeprecatedSpellings: -o table and --output-file still work, each
// with a deprecation warning on stderr (never on stdout, which scripts
// parse), and give what the new spelling gives.
func TestDeprecatedSpellings(t *testing.T) {
	want, _, err := run(t, "versions", "-o", "text")
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"versions", "-o", "table"}, {"versions", "--output=table"}} {
		out, errOut, err := run(t, args...)
		if err != nil || out != want || !strings.Contains(errOut, `"table" has been deprecated, use -o text`) {
			t.Errorf("%v: err %v, stdout equal to -o text: %v, stderr %q", args, err, out == want, errOut)
		}
	}
	tests := []struct {
		name  string
		args  func(path string) []string
		files []string // written, relative to path
	}{
		{"config init --output-file", func(p string) []string { return []string{"config", "init", "--output-file", p} }, []string{""}},
		{"bundle keygen --output-file", func(p string) []string { return []string{"bundle", "keygen", "--output-file", p} }, []string{".key", ".pub"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x")
			out, errOut, err := run(t, tt.args(path)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, errOut)
			}
			if !strings.Contains(errOut, "Flag --output-file has been deprecated, use --") || strings.Contains(out, "deprecated") {
				t.Errorf("stdout %q, stderr %q: want the deprecation on stderr only", out, errOut)
			}
			for _, suffix := range tt.files {
				if _, err := os.Stat(path + suffix); err != nil {
					t.Errorf("the old spelling wrote nothing: %v", err)
				}
			}
		})
	}
}

// TestDidYouMean: a mistyped subcommand, on root and on a command group,
// is a usage error with cobra's suggestion and the pointer to --help.
func TestDidYouMean(t *testing.T) {
	tests := []struct {
		args       []string
		want, help string
	}{
		{[]string{"instal"}, "unknown command \"instal\" for \"tmbox\"\n\nDid you mean this?\n\tinstall", "tmbox"},
		{[]string{"statu", "--kubeconfig", "x"}, "Did you mean this?\n\tstatus", "tmbox"},
		{[]string{"bundle", "creat"}, "unknown command \"creat\" for \"tmbox bundle\"\n\nDid you mean this?\n\tcreate", "tmbox bundle"},
		{[]string{"cluster", "delet"}, "Did you mean this?\n\tdelete", "tmbox cluster"},
		{[]string{"frobnicate"}, "unknown command \"frobnicate\" for \"tmbox\"", "tmbox"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			res := runMain(t, mainRun{args: tt.args})
			if res.code != exitUsage || !strings.Contains(res.stderr, tt.want) || res.stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and %q", res.code, res.stdout, res.stderr, tt.want)
			}
			if !strings.HasSuffix(res.stderr, "Run '"+tt.help+" --help' for usage.\n") {
				t.Errorf("stderr does not end with the pointer to %s --help:\n%s", tt.help, res.stderr)
			}
		})
	}
	// A group alone prints its help and succeeds.
	if res := runMain(t, mainRun{args: []string{"bundle"}}); res.code != exitOK || !strings.Contains(res.stdout, "Available Commands") {
		t.Errorf("tmbox bundle: exit %d\n%s", res.code, res.stdout)
	}
}

// testKubeconfig writes a kubeconfig whose current context is kind-tmbox,
// at an API server nothing listens on.
func testKubeconfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	const kc = `apiVersion: v1
kind: Config
clusters:
- name: kind-tmbox
  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}
users:
- name: kind-tmbox
  user: {token: secret}
contexts:
- name: kind-tmbox
  context: {cluster: kind-tmbox, user: kind-tmbox}
current-context: kind-tmbox
`
	if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExitCodes runs tmbox as a process, one case per documented exit
// code (docs/cli.md) that needs no cluster: the code, and stderr saying
// why. (4, an upgrade rolled back, needs a cluster: the installer's
// upgrade tests cover it; 130 by SIGINT: the wizard and install tests.)
func TestExitCodes(t *testing.T) {
	kc := testKubeconfig(t)
	home := t.TempDir()
	tests := []struct {
		name string
		run  mainRun
		code int
		want []string
	}{
		{"success", mainRun{args: []string{"versions"}}, exitOK, nil},
		{"failed: cluster unreachable", mainRun{args: []string{"status", "--kubeconfig", kc}}, exitError, []string{"127.0.0.1:1"}},
		{"usage: unknown release", mainRun{args: []string{"plan", "--from", "1.21", "--to", "9.9"}}, exitUsage, []string{`unknown release "9.9"`, "Run 'tmbox plan --help' for usage."}},
		{"usage: unknown release to install", mainRun{args: []string{"install", "--yes", "--release", "9.9", "--kubeconfig", kc}}, exitUsage, []string{`unknown release "9.9"`, "Run 'tmbox install --help' for usage."}},
		{"usage: unknown release to upgrade to", mainRun{args: []string{"upgrade", "--yes", "--to", "9.9", "--kubeconfig", kc}}, exitUsage, []string{`unknown release "9.9"`}},
		{"usage: -o is a format", mainRun{args: []string{"render", "-o", "out"}}, exitUsage, []string{"-o is the output format now", "use --output-dir DIR", "Run 'tmbox render --help' for usage."}},
		{"usage: no terminal", mainRun{args: []string{"uninstall", "--kubeconfig", kc}}, exitUsage, []string{"pass --yes"}},
		{"preflight failed", mainRun{args: []string{"preflight", "--create-cluster", "--release", "1.21", "--mirror", upstreamDir(t)}, env: []string{"PATH=" + t.TempDir()}}, exitPreflight, []string{"preflight failed", "container-engine"}},
		{"declined: uninstall", mainRun{args: []string{"uninstall", "--kubeconfig", kc}, answer: "n\n"}, exitCancelled,
			[]string{"Uninstall Istio, Knative and TriggerMesh from context kind-tmbox (https://127.0.0.1:1), keeping CRDs and custom resources? [y/N] ", "cancelled: not confirmed; nothing was changed"}},
		{"declined: uninstall --purge", mainRun{args: []string{"uninstall", "--purge", "--kubeconfig", kc}, answer: "\n"}, exitCancelled,
			[]string{"from context kind-tmbox (https://127.0.0.1:1), and DELETE their CRDs", "cancelled: not confirmed"}},
		{"declined: install", mainRun{args: []string{"install", "--release", "1.21", "--kubeconfig", kc}, answer: "no\n"}, exitCancelled,
			[]string{"Install 1.21 on context kind-tmbox (https://127.0.0.1:1)? [y/N] ", "cancelled: not confirmed"}},
		{"declined: configure", mainRun{args: []string{"configure", "--domain", "apps.example.com", "--kubeconfig", kc}, answer: "n\n"}, exitCancelled,
			[]string{"Change the settings of the installed release on context kind-tmbox (https://127.0.0.1:1)? [y/N] "}},
		{"no kubeconfig: plain words", mainRun{args: []string{"uninstall"}, answer: "y\n", env: []string{"KUBECONFIG=" + filepath.Join(home, "none")}}, exitError,
			[]string{"no kubeconfig found (looked in $KUBECONFIG (" + filepath.Join(home, "none") + ") and the in-cluster service account", "pass --kubeconfig FILE (and --context NAME)", "--create-cluster"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run.env = append([]string{"HOME=" + home}, tt.run.env...)
			res := runMain(t, tt.run)
			if res.code != tt.code {
				t.Errorf("exit code %d, want %d\nstderr: %s", res.code, tt.code, res.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, res.stderr)
				}
			}
			if strings.Contains(res.stderr, "KUBERNETES_MASTER") {
				t.Errorf("client-go's message leaked:\n%s", res.stderr)
			}
		})
	}
}

// TestDeclinedIsCancelled: a "no" is the cancelled outcome, exit 130,
// in the JSON result too.
func TestDeclinedIsCancelled(t *testing.T) {
	result, code := outcome(context.Background(), fmt.Errorf("upgrade: %w", &declinedError{}))
	if result != installer.ResultCancelled || code != exitCancelled {
		t.Errorf("declined: %s %d, want %s %d", result, code, installer.ResultCancelled, exitCancelled)
	}
}

// TestPreflightSaysItsTarget: without a kubeconfig, preflight says where
// it looked and that it checks this host for a kind cluster.
func TestPreflightSaysItsTarget(t *testing.T) {
	home := t.TempDir()
	res := runMain(t, mainRun{args: []string{"preflight", "-o", "json", "--release", "1.21", "--mirror", upstreamDir(t)}, env: []string{"HOME=" + home, "KUBECONFIG=", "PATH=" + t.TempDir()}})
	want := "no kubeconfig found (looked in ~/.kube/config (" + filepath.Join(home, ".kube", "config") + ") and the in-cluster service account (KUBERNETES_SERVICE_HOST is not set)): checking this host for a kind cluster"
	if !strings.Contains(res.stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
	}
	var doc preflightOutput
	if err := json.Unmarshal([]byte(res.stdout), &doc); err != nil || doc.Target != "kind cluster tmbox on this host" {
		t.Errorf("stdout is not the JSON report of the kind target: %v\n%s", err, res.stdout)
	}
	// With a kubeconfig it says nothing of the kind.
	res = runMain(t, mainRun{args: []string{"preflight", "-o", "json", "--release", "1.21", "--mirror", upstreamDir(t), "--kubeconfig", testKubeconfig(t)}, env: []string{"HOME=" + home}})
	if strings.Contains(res.stderr, "no kubeconfig found") {
		t.Errorf("with a kubeconfig:\n%s", res.stderr)
	}
}

// TestKeptMessage: an install whose --components leave out installed
// components names them and says how they can go.
func TestKeptMessage(t *testing.T) {
	installed := []installer.ComponentStatus{{Name: "istio"}, {Name: "knative-serving"}, {Name: "net-istio"}, {Name: "knative-eventing"}, {Name: "triggermesh"}, {Name: "triggermesh-core"}}
	tests := []struct {
		selected []string
		want     string
	}{
		{[]string{"istio", "knative-serving", "net-istio"}, "knative-eventing, triggermesh, triggermesh-core stay installed (tmbox does not remove components left out of --components); to remove them, tmbox uninstall removes every component (it takes no --components), then tmbox install --components istio,knative-serving,net-istio installs only these"},
		{[]string{"istio", "knative-serving", "net-istio", "knative-eventing", "triggermesh"}, "triggermesh-core stays installed"},
		{[]string{"istio", "knative-serving", "net-istio", "knative-eventing", "triggermesh", "triggermesh-core"}, ""},
	}
	for _, tt := range tests {
		got := keptMessage(tt.selected, installed)
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("%v: %q, want %q", tt.selected, got, tt.want)
		}
	}
	// The suggestion is one tmbox accepts: uninstall has no --components.
	if newUninstallCmd(&globalOptions{}).Flags().Lookup("components") != nil && strings.Contains(tests[0].want, "takes no --components") {
		t.Error("uninstall has --components now: suggest it")
	}
}

// TestUpgradeQuestion: the upgrade prompt names the cluster, the releases
// and the hops.
func TestUpgradeQuestion(t *testing.T) {
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := cat.Plan("1.21", "1.23", nil, catalog.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := upgradeQuestion("context kind-tmbox (https://127.0.0.1:6443)", &installer.UpgradePlan{Plan: plan})
	if want := "Upgrade context kind-tmbox (https://127.0.0.1:6443) from 1.21 to 1.23 in 2 hop(s)?"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

// TestSummaryNext pins the wizard summary's next commands: the pods of
// what was installed are listed by namespace (they carry none of tmbox's
// labels, so a label selector would list nothing).
func TestSummaryNext(t *testing.T) {
	all := []tui.Component{{Name: "istio"}, {Name: "knative-serving"}, {Name: "net-istio"}, {Name: "knative-eventing"}, {Name: "triggermesh"}, {Name: "triggermesh-core"}}
	tests := []struct {
		kubeconfig, kc string
		comp           []tui.Component
		want           []string
	}{
		{"/s/dev/kubeconfig", "", all, []string{
			"export KUBECONFIG=/s/dev/kubeconfig",
			"tmbox status",
			"kubectl get pods -A | grep -E '^(NAMESPACE|istio-system|knative-serving|knative-eventing|triggermesh) '",
			"tmbox upgrade --to RELEASE   # tmbox versions lists the releases",
		}},
		{"", " --kubeconfig /k --context c", all[:3], []string{
			"tmbox status --kubeconfig /k --context c",
			"kubectl --kubeconfig /k --context c get pods -A | grep -E '^(NAMESPACE|istio-system|knative-serving) '",
			"tmbox upgrade --to RELEASE --kubeconfig /k --context c   # tmbox versions lists the releases",
		}},
	}
	for _, tt := range tests {
		if got := summaryNext(tt.kubeconfig, tt.kc, tt.comp); !slices.Equal(got, tt.want) {
			t.Errorf("summaryNext(%q):\n%q\nwant\n%q", tt.kc, got, tt.want)
		}
	}
}

// mainRun is one run of tmbox as a process (this test binary, see
// TestMain).
type mainRun struct {
	args, env []string
	// answer, when set, is typed on a terminal (a pty) that is stdin.
	answer string
}

// runMain runs tmbox with run's args, in an environment of only run.env
// (and TMBOX_CORPUS_MAIN), and returns its exit code and output.
func runMain(t *testing.T, run mainRun) corpusResult {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, run.args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append([]string{corpusMainEnv + "=1", "HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "KUBECONFIG=" + filepath.Join(t.TempDir(), "none")}, run.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if run.answer != "" {
		master, slave := openPTY(t)
		cmd.Stdin = slave
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if _, err := master.Write([]byte(run.answer)); err != nil {
			t.Fatal(err)
		}
	}
	err = cmd.Run()
	res := corpusResult{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.code = exitErr.ExitCode()
	default:
		t.Fatalf("run %v: %v", run.args, err)
	}
	return res
}

// openPTY opens a pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// TestIntegrationSummaryPods: the wizard summary's pod listing, run as a
// shell runs it against a real install, lists the pods of every installed
// component's namespace (a label selector on tmbox's labels listed none:
// pods do not carry them). An install with fewer --components then says
// which stay installed.
func TestIntegrationSummaryPods(t *testing.T) {
	c := startOwnCluster(t, suite.Cluster(t))
	if _, errOut, err := run(t, "install", "--kubeconfig", c.Kubeconfig, "--release", "1.21", "--mirror", upstreamDir(t), "--yes", "--timeout", "2m"); err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	var all []tui.Component
	for _, n := range []string{"istio", "knative-serving", "net-istio", "knative-eventing", "triggermesh", "triggermesh-core"} {
		all = append(all, tui.Component{Name: n})
	}
	next := summaryNext(c.Kubeconfig, "", all)
	var listing string
	for _, n := range next {
		if strings.HasPrefix(n, "kubectl ") {
			listing = n
		}
	}
	sh := exec.Command("sh", "-c", listing)
	sh.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig, "PATH="+c.BinDir+":"+os.Getenv("PATH"))
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", listing, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if !strings.HasPrefix(lines[0], "NAMESPACE") {
		t.Errorf("no header:\n%s", out)
	}
	for _, ns := range []string{"istio-system", "knative-serving", "knative-eventing", "triggermesh"} {
		n := 0
		for _, l := range lines {
			if strings.HasPrefix(l, ns+" ") {
				n++
			}
		}
		if n == 0 {
			t.Errorf("%s lists no pod in %s:\n%s", listing, ns, out)
		}
	}
	t.Logf("%s: %d pods", listing, len(lines)-1)

	// Fewer components now: the rest stay, and tmbox says so.
	_, errOut, err := run(t, "install", "--kubeconfig", c.Kubeconfig, "--release", "1.21", "--mirror", upstreamDir(t), "--yes", "--components", "istio,knative-serving,net-istio")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	if want := "knative-eventing, triggermesh, triggermesh-core stay installed (tmbox does not remove components left out of --components)"; !strings.Contains(errOut, want) {
		t.Errorf("stderr lacks %q:\n%s", want, errOut)
	}
}
