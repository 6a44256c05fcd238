package main

import (
	"context"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/tmbox/tmbox/installer"
	"github.com/tmbox/tmbox/installer/settings"
	"github.com/tmbox/tmbox/internal/testcluster"
)

// adviceWalk is one state tmbox refuses a command in, with the advice the
// refusal gives: TestIntegrationAdviceWalk drives the state, runs the
// command, checks the refusal, and runs what the advice names against the
// same state, which must be accepted.
type adviceWalk struct {
	name string
	// gap walks with a catalog of 1.30 and 1.32 only; real with the
	// embedded catalog and ../shared/upstream (settings need the real
	// releases' objects).
	gap, real bool
	// covers are substrings of the advice strings in the source this walk
	// exercises (TestAdviceCoverage checks every one is walked).
	covers []string
	// setup drives the cluster to the state.
	setup func(t *testing.T, w *walkEnv)
	// refused is the command refused there (the cluster flags are added).
	refused func(w *walkEnv) []string
	// want is a substring of the refusal.
	want string
	// rerun runs the refused command again after the advice (advice that
	// says what to do "first"); then edits it (e.g. the new bundle).
	rerun bool
	then  func(w *walkEnv, args []string) []string
}

// walkEnv is one walk's cluster and files.
type walkEnv struct {
	t        *testing.T
	c        *testcluster.Cluster
	f        *airgapFixture
	state    string
	upstream string            // ../shared/upstream
	files    map[string]string // a FILE placeholder's value, by flag
	partial  string            // a bundle of 1.30 and 1.31
	later    string            // a bundle of 1.31 and 1.32
	registry string            // a private registry (HOST:PORT/PREFIX)
	// newBundle is where an advised `tmbox bundle create` writes.
	newBundle string
	// beforeAdvice runs before the advised commands (the lock's holder
	// lets go).
	beforeAdvice func()
}

// source are the flags of a connected run: the test catalog and mirror
// (the upstream manifests for the embedded catalog's releases).
func (w *walkEnv) source() []string {
	if w.f == nil {
		return []string{"--mirror", w.upstream}
	}
	return []string{"--catalog", w.f.catalog, "--mirror", w.f.mirror}
}

// withContext adds what a command needs on this machine besides what the
// advice says: the cluster, the state dir, --yes, and the test catalog
// and mirror when it reads no bundle; bundle create's output and source.
func (w *walkEnv) withContext(args []string) []string {
	out := slices.Clone(args)
	switch args[0] {
	case "install", "upgrade", "configure":
		out = append(out, "--kubeconfig", w.c.Kubeconfig, "--state-dir", w.state, "--yes", "--timeout", "2m")
		if !slices.Contains(args, "--bundle") && !slices.Contains(args, "--catalog") {
			out = append(out, w.source()...)
		}
	case "uninstall":
		out = append(out, "--kubeconfig", w.c.Kubeconfig, "--yes")
	case "bundle":
		out = append(out, "--catalog", w.f.catalog, "--mirror", w.f.mirror, "--file", w.newBundle)
	}
	return out
}

// install installs release into the walk's cluster (with extra flags).
func (w *walkEnv) install(release string, extra ...string) {
	w.t.Helper()
	args := w.withContext(append([]string{"install", "--release", release}, extra...))
	if _, errOut, err := run(w.t, args...); err != nil {
		w.t.Fatalf("setup: tmbox %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
}

// recordUnfinished appends a running operation to the cluster's journal,
// as a tmbox killed in the middle of it leaves it.
func (w *walkEnv) recordUnfinished(op installer.Operation) {
	w.t.Helper()
	cs := kubernetes.NewForConfigOrDie(w.c.Config)
	ctx := context.Background()
	cm, err := cs.CoreV1().ConfigMaps(installer.StateNamespace).Get(ctx, installer.StateConfigMap, metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	var st installer.State
	if err := json.Unmarshal([]byte(cm.Data["state.json"]), &st); err != nil {
		w.t.Fatal(err)
	}
	op.Started, op.Result = time.Now(), installer.ResultRunning
	st.Journal = append(st.Journal, op)
	raw, err := json.Marshal(&st)
	if err != nil {
		w.t.Fatal(err)
	}
	cm.Data["state.json"] = string(raw)
	if _, err := cs.CoreV1().ConfigMaps(installer.StateNamespace).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

// holdLock starts an upgrade to release that takes the cluster's lock and
// holds it until beforeAdvice runs, plus a moment (so the advised command
// really waits).
func (w *walkEnv) holdLock(release string) {
	w.t.Helper()
	held, letGo := make(chan struct{}), make(chan struct{})
	var done sync.WaitGroup
	done.Add(1)
	go func() {
		defer done.Done()
		u := &installer.Upgrade{Options: installer.Options{Release: release, CatalogFile: w.f.catalog, Mirror: w.f.mirror, Kubeconfig: w.c.Kubeconfig, StateDir: w.state}}
		u.Confirm = func(*installer.UpgradePlan) error {
			close(held)
			<-letGo
			return errors.New("the holder stops")
		}
		if err := u.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "the holder stops") {
			w.t.Errorf("the lock's holder: %v", err)
		}
	}()
	select {
	case <-held:
	case <-time.After(time.Minute):
		w.t.Fatal("the lock's holder did not get the lock")
	}
	w.beforeAdvice = func() {
		go func() { time.Sleep(3 * time.Second); close(letGo) }()
	}
	w.t.Cleanup(done.Wait)
}

// adviceWalks are the refusals whose advice names a command. Releases
// 1.30, 1.31 and 1.32 are the synthetic ones of newAirgapReleases.
var adviceWalks = []adviceWalk{{
	name:    "install of an older release on a newer cluster",
	covers:  []string{"move back one minor at a time: %s"},
	setup:   func(t *testing.T, w *walkEnv) { w.install("1.32") },
	refused: func(*walkEnv) []string { return []string{"install", "--release", "1.30"} },
	want:    "release 1.32 is installed, not 1.30: move back one minor at a time: `tmbox upgrade --to 1.31 --allow-downgrade`, then `tmbox upgrade --to 1.30 --allow-downgrade`",
}, {
	name:    "install of an older release, the catalog lacking the one between",
	gap:     true,
	covers:  []string{"`tmbox uninstall`, then `tmbox install --release %s`"},
	setup:   func(t *testing.T, w *walkEnv) { w.install("1.32") },
	refused: func(*walkEnv) []string { return []string{"install", "--release", "1.30"} },
	want:    "tmbox cannot move 1.32 to 1.30 (Knative downgrades one minor at a time): `tmbox uninstall`, then `tmbox install --release 1.30`",
}, {
	name:    "install of the release before the installed one",
	covers:  []string{"move back to %s with %s", "`tmbox upgrade --to %s --allow-downgrade`"},
	setup:   func(t *testing.T, w *walkEnv) { w.install("1.31") },
	refused: func(*walkEnv) []string { return []string{"install", "--release", "1.30"} },
	want:    "move back to 1.30 with `tmbox upgrade --to 1.30 --allow-downgrade`",
}, {
	name:    "install on a cluster with an older release",
	covers:  []string{"move to %s with `tmbox upgrade --to %s`"},
	setup:   func(t *testing.T, w *walkEnv) { w.install("1.30") },
	refused: func(*walkEnv) []string { return []string{"install", "--release", "1.32"} },
	want:    "release 1.30 is installed, not 1.32: move to 1.32 with `tmbox upgrade --to 1.32`",
}, {
	name:    "upgrade two minors down",
	setup:   func(t *testing.T, w *walkEnv) { w.install("1.32") },
	refused: func(*walkEnv) []string { return []string{"upgrade", "--to", "1.30", "--allow-downgrade"} },
	want:    "Knative downgrades one minor at a time (to 1.31); move back one minor at a time: `tmbox upgrade --to 1.31 --allow-downgrade`, then `tmbox upgrade --to 1.30 --allow-downgrade`",
}, {
	name:    "upgrade one minor down without --allow-downgrade",
	setup:   func(t *testing.T, w *walkEnv) { w.install("1.31") },
	refused: func(*walkEnv) []string { return []string{"upgrade", "--to", "1.30"} },
	want:    "downgrading needs --allow-downgrade; move back to 1.30 with `tmbox upgrade --to 1.30 --allow-downgrade`",
}, {
	name:    "upgrade of a cluster with nothing installed",
	covers:  []string{"no tmbox release is installed on this cluster: use `tmbox install --release %s`"},
	setup:   func(*testing.T, *walkEnv) {},
	refused: func(*walkEnv) []string { return []string{"upgrade", "--to", "1.31"} },
	want:    "use `tmbox install --release 1.31`",
}, {
	name:    "configure of a cluster with nothing installed",
	real:    true, // the domain needs Knative Serving's config-domain
	covers:  []string{"no tmbox release is installed on this cluster: use `tmbox install`"},
	setup:   func(*testing.T, *walkEnv) {},
	refused: func(*walkEnv) []string { return []string{"configure", "--domain", "fn.example.com"} },
	want:    "no tmbox release is installed on this cluster: use `tmbox install`",
	rerun:   true,
}, {
	name:   "upgrade after an unfinished install",
	covers: []string{"re-run `tmbox install --release %s` first"},
	setup: func(t *testing.T, w *walkEnv) {
		w.install("1.30")
		w.recordUnfinished(installer.Operation{ID: "install-1.30", Kind: "install", To: "1.30"})
	},
	refused: func(*walkEnv) []string { return []string{"upgrade", "--to", "1.31"} },
	want:    "the install install-1.30 did not finish; re-run `tmbox install --release 1.30` first",
	rerun:   true,
}, {
	name:   "install after an unfinished upgrade",
	covers: []string{"finish it first: %s", "`tmbox upgrade --to %s`"},
	setup: func(t *testing.T, w *walkEnv) {
		w.install("1.30")
		w.recordUnfinished(installer.Operation{ID: "upgrade-1.30-1.31", Kind: "upgrade", From: "1.30", To: "1.31"})
	},
	refused: func(*walkEnv) []string { return []string{"install", "--release", "1.30"} },
	want:    "an unfinished upgrade (upgrade-1.30-1.31) is recorded in the cluster; finish it first: `tmbox upgrade --to 1.31`",
}, {
	name: "upgrade of a registry-fed install without a bundle",
	setup: func(t *testing.T, w *walkEnv) {
		w.install("1.30", "--bundle", w.partial, "--registry", w.registry)
	},
	refused: func(w *walkEnv) []string { return []string{"upgrade", "--to", "1.31", "--catalog", w.f.catalog} },
	want:    "give --bundle FILE holding release 1.31",
}, {
	name:    "install from a bundle into an existing cluster without a registry",
	setup:   func(*testing.T, *walkEnv) {},
	refused: func(w *walkEnv) []string { return []string{"install", "--release", "1.30", "--bundle", w.partial} },
	want:    "needs --registry HOST[/PREFIX]",
}, {
	name:   "upgrade of a release whose pull secret was deleted",
	real:   true,
	covers: []string{"give the file(s) again (`tmbox configure %s`)"},
	setup: func(t *testing.T, w *walkEnv) {
		w.install("1.21", "--pull-secret", w.files["--pull-secret"])
		cs := kubernetes.NewForConfigOrDie(w.c.Config)
		if err := cs.CoreV1().Secrets("knative-serving").Delete(context.Background(), settings.PullSecretName, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	},
	refused: func(*walkEnv) []string { return []string{"upgrade", "--to", "1.22"} },
	want:    "Secret knative-serving/" + settings.PullSecretName + " is gone: give the file(s) again (`tmbox configure --pull-secret FILE`)",
	rerun:   true,
}, {
	name: "a held lock",
	setup: func(t *testing.T, w *walkEnv) {
		w.install("1.30")
		w.holdLock("1.31")
	},
	refused: func(*walkEnv) []string { return []string{"upgrade", "--to", "1.31"} },
	want:    "wait for it with --wait-for-lock DURATION",
}, {
	name:   "an upgrade to a target missing from the bundle",
	covers: []string{"`tmbox bundle create --from %s --to %s`"},
	setup: func(t *testing.T, w *walkEnv) {
		w.install("1.30", "--bundle", w.partial, "--registry", w.registry)
	},
	refused: func(w *walkEnv) []string { return []string{"upgrade", "--to", "1.32", "--bundle", w.partial} },
	want:    "missing 1.32 (`tmbox bundle create --from 1.30 --to 1.32` makes one that does)",
	rerun:   true,
	then:    useNewBundle,
}, {
	name:   "an upgrade from a bundle lacking the installed release",
	covers: []string{"(`tmbox bundle create --from %s --to %s`)"},
	setup: func(t *testing.T, w *walkEnv) {
		w.install("1.30", "--bundle", w.partial, "--registry", w.registry)
	},
	refused: func(w *walkEnv) []string { return []string{"upgrade", "--to", "1.32", "--bundle", w.later} },
	want:    "missing 1.30 (`tmbox bundle create --from 1.30 --to 1.32`)",
	rerun:   true,
	then:    useNewBundle,
}, {
	name:   "an install of a release missing from the bundle",
	covers: []string{"`tmbox bundle create --release %s`"},
	setup:  func(*testing.T, *walkEnv) {},
	refused: func(w *walkEnv) []string {
		return []string{"install", "--release", "1.32", "--bundle", w.partial, "--registry", w.registry}
	},
	want:  "missing 1.32 (`tmbox bundle create --release 1.32` makes one that does)",
	rerun: true,
	then:  useNewBundle,
}}

// useNewBundle is the refused command with the bundle the advice made.
func useNewBundle(w *walkEnv, args []string) []string {
	out := slices.Clone(args)
	out[slices.Index(out, "--bundle")+1] = w.newBundle
	return out
}

var (
	// backticked is a command the advice names: `tmbox …`.
	backticked = regexp.MustCompile("`tmbox ([^`]+)`")
	// flagAdvice is a flag the advice says to add, with its placeholder.
	flagAdvice = regexp.MustCompile(`(--[a-z-]+) ([A-Z][A-Z_]*(\[[^\]]*\])?)`)
)

// advised is what to run after a refusal: the commands the advice names,
// in order, or else the refused command with the flag it names (its
// placeholder filled; a --bundle replaces the catalog and mirror, which
// the bundle holds).
func (w *walkEnv) advised(msg string, refused []string) [][]string {
	var out [][]string
	for _, m := range backticked.FindAllStringSubmatch(msg, -1) {
		args := strings.Fields(m[1])
		for i, a := range args {
			if a == "FILE" && i > 0 {
				if args[i] = w.files[args[i-1]]; args[i] == "" {
					w.t.Fatalf("advice %q: no file for %s", msg, args[i-1])
				}
			}
		}
		out = append(out, w.withContext(args))
	}
	if len(out) > 0 {
		return out
	}
	m := flagAdvice.FindStringSubmatch(msg)
	if m == nil {
		return nil
	}
	value := map[string]string{"DURATION": "2m", "FILE": w.partial, "HOST[/PREFIX]": w.registry}[m[2]]
	if value == "" {
		w.t.Fatalf("advice %q: no value for %s", msg, m[2])
	}
	args := slices.Clone(refused)
	if m[1] == "--bundle" {
		for _, f := range []string{"--catalog", "--mirror"} {
			if i := slices.Index(args, f); i >= 0 {
				args = slices.Delete(args, i, i+2)
			}
		}
	}
	return [][]string{w.withContext(append(args, m[1], value))}
}

// TestIntegrationAdviceWalk (issue 17): every refusal whose message names
// a command is driven on a cluster of its own; what the advice names is
// run against the state the refusal saw, and must be accepted (exit 0:
// the advised commands are run for real, so each proves the next is
// accepted too).
func TestIntegrationAdviceWalk(t *testing.T) {
	shared := suite.Cluster(t)
	f := newAirgapReleases(t, "1.30", "1.31", "1.32")
	partial, later := filepath.Join(t.TempDir(), "partial.bundle"), filepath.Join(t.TempDir(), "later.bundle")
	for file, releases := range map[string]string{partial: "1.30,1.31", later: "1.31,1.32"} {
		if _, errOut, err := run(t, "--catalog", f.catalog, "bundle", "create", "--release", releases, "--mirror", f.mirror, "--file", file); err != nil {
			t.Fatalf("bundle create: %v\n%s", err, errOut)
		}
	}
	gap := newAirgapReleases(t, "1.30", "1.32")
	upstream, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "upstream"))
	if err != nil {
		t.Fatal(err)
	}
	pullSecret := filepath.Join(t.TempDir(), "pull-secret.json")
	if err := os.WriteFile(pullSecret, []byte(`{"auths": {"registry.example.com": {"auth": "dXNlcjpwYXNz"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, walk := range adviceWalks {
		t.Run(walk.name, func(t *testing.T) {
			w := &walkEnv{t: t, c: startOwnCluster(t, shared), f: f, state: t.TempDir(), partial: partial, later: later, registry: startRegistry(t) + "/mirror"}
			w.newBundle = filepath.Join(w.state, "advised.bundle")
			w.upstream, w.files = upstream, map[string]string{"--pull-secret": pullSecret}
			switch {
			case walk.gap:
				w.f = gap
			case walk.real:
				w.f = nil
			}
			walk.setup(t, w)
			refused := w.withContext(walk.refused(w))
			_, errOut, err := run(t, refused...)
			if err == nil {
				t.Fatalf("tmbox %s was accepted, want it refused with %q", strings.Join(refused, " "), walk.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, walk.want) {
				t.Fatalf("refusal %q, want it to contain %q\n%s", msg, walk.want, errOut)
			}
			steps := w.advised(msg, refused)
			if len(steps) == 0 {
				t.Fatalf("refusal %q names no command and no flag to add", msg)
			}
			if w.beforeAdvice != nil {
				w.beforeAdvice()
			}
			if walk.rerun {
				again := refused
				if walk.then != nil {
					again = walk.then(w, again)
				}
				steps = append(steps, again)
			}
			for _, args := range steps {
				start := time.Now()
				_, errOut, err := run(t, args...)
				t.Logf("advised: tmbox %s: %s, exit %d", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), exitCode(context.Background(), err))
				if err != nil {
					t.Fatalf("the advised tmbox %s is refused too: %v\n%s", strings.Join(args, " "), err, lastLines(errOut, 20))
				}
			}
		})
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// adviceExempt are advice-looking strings that suggest no command, with
// why.
var adviceExempt = map[string]string{
	"tmbox config init never replaces a file":          "says what config init does, suggests nothing",
	"no cluster: tmbox configure changes an installed": "unreachable: an existing cluster's provider always finds a config or fails",
	"configure keeps the installed release: use":       "the CLI's configure has no --release (nor a config key for it): only an API caller meets it",
	"(tmbox bundle create --image-map FILE":            "image overrides in a bundle, new and still changing (another session's work): not walked yet",
}

// TestAdviceCoverage: every error or advice string in installer and
// cmd/tmbox that names a tmbox command is walked by
// TestIntegrationAdviceWalk (or exempt, with why).
func TestAdviceCoverage(t *testing.T) {
	names := regexp.MustCompile(`\btmbox (install|upgrade|uninstall|configure|bundle|mirror|cluster|status|plan|preflight|versions|render|support-bundle|config)\b`)
	var covers []string
	for _, w := range adviceWalks {
		covers = append(covers, w.covers...)
	}
	found := 0
	for _, dir := range []string{"../../installer", "."} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			for _, lit := range adviceLiterals(t, file) {
				if !names.MatchString(lit.text) {
					continue
				}
				found++
				covered := slices.ContainsFunc(covers, func(c string) bool { return strings.Contains(lit.text, c) })
				for k := range adviceExempt {
					covered = covered || strings.Contains(lit.text, k)
				}
				if !covered {
					t.Errorf("%s: advice %q is walked by no case of TestIntegrationAdviceWalk", lit.pos, lit.text)
				}
			}
		}
	}
	if found < 8 {
		t.Errorf("found %d advice strings: the scan misses them", found)
	}
}

type literal struct {
	pos  string
	text string
}

// adviceLiterals are the string literals of a file that errors or advice
// are made of: arguments of fmt.Errorf and errors.New, and every literal
// of a function whose name ends in Advice.
func adviceLiterals(t *testing.T, file string) []literal {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []literal
	add := func(n ast.Node) {
		ast.Inspect(n, func(n ast.Node) bool {
			if b, ok := n.(*ast.BasicLit); ok && b.Kind == token.STRING {
				if s, err := strconv.Unquote(b.Value); err == nil {
					out = append(out, literal{fset.Position(b.Pos()).String(), s})
				}
			}
			return true
		})
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncDecl:
			if strings.HasSuffix(n.Name.Name, "Advice") {
				add(n.Body)
				return false
			}
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && (x.Name == "fmt" && sel.Sel.Name == "Errorf" || x.Name == "errors" && sel.Sel.Name == "New") {
					for _, a := range n.Args {
						add(a)
					}
				}
			}
		}
		return true
	})
	return out
}
