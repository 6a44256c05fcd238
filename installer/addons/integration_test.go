package addons

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tmbox/tmbox/installer/apply"
	"github.com/tmbox/tmbox/installer/wait"
	"github.com/tmbox/tmbox/internal/testcluster"
)

var suite = testcluster.NewSuite(testcluster.Options{Nodes: 1})

// helperEnv makes the test binary run one Ensure and exit (the
// SIGKILL test's subprocess); its value is a JSON helperSpec.
const helperEnv = "TMBOX_TEST_ADDON_HELPER"

// helperSpec is what the subprocess installs.
type helperSpec struct {
	Kubeconfig string `json:"kubeconfig"`
	Addon      Addon  `json:"addon"`
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(ensureHelper(spec))
	}
	os.Exit(suite.Main(m))
}

// ensureHelper runs one Ensure of the add-on spec names.
func ensureHelper(spec string) int {
	var s helperSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, "helper spec:", err)
		return 2
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubeconfig:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	loaded, err := Load(context.Background(), []Addon{s.Addon}, LoadOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		return 2
	}
	m, err := newManager(cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		return 2
	}
	if _, err := m.Ensure(context.Background(), loaded[0]); err != nil {
		fmt.Fprintln(os.Stderr, "ensure:", err)
		return 1
	}
	return 0
}

// newManager returns a Manager for cfg that waits with tmbox's waiter,
// as the installer wires it.
func newManager(cfg *rest.Config, log *slog.Logger) (*Manager, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	w := &wait.Waiter{Dynamic: dyn, Client: client, Log: log}
	return &Manager{
		Config: cfg,
		Log:    log,
		Wait: func(ctx context.Context, objs []*unstructured.Unstructured, budget time.Duration) error {
			aobjs := make([]*apply.Object, len(objs))
			for i, u := range objs {
				aobjs[i] = &apply.Object{Unstructured: u, Component: "addon"}
			}
			return w.WaitReady(ctx, aobjs, "addons-test", budget, func(object, reason string) {
				log.Info("waiting", "object", object, "reason", reason)
			})
		},
	}, nil
}

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// gatewayChart packages Istio's gateway chart from the Istio module into
// a .tgz, as `helm package` would, and returns its path.
func gatewayChart(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/istio").Output()
	if err != nil {
		t.Fatalf("find the Istio module: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "manifests", "charts", "gateway")
	ch, err := loader.LoadDir(dir)
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	path, err := chartutil.Save(ch, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// deployment reads a Deployment.
func deployment(t *testing.T, cs kubernetes.Interface, ns, name string) *unstructured.Unstructured {
	t.Helper()
	d, err := cs.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Deployment %s/%s: %v", ns, name, err)
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(d)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

// requireAvailable fails unless the Deployment is rolled out and
// Available, by the waiter's own judgement.
func requireAvailable(t *testing.T, cs kubernetes.Interface, ns, name string) *unstructured.Unstructured {
	t.Helper()
	u := deployment(t, cs, ns, name)
	if ok, why := wait.WorkloadReady("Deployment")(u); !ok {
		t.Fatalf("Deployment %s/%s is not ready: %s", ns, name, why)
	}
	return u
}

// envOf returns the first container's env of a Deployment as a map.
func envOf(u *unstructured.Unstructured) map[string]string {
	cs, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	out := map[string]string{}
	if len(cs) == 0 {
		return out
	}
	env, _, _ := unstructured.NestedSlice(cs[0].(map[string]any), "env")
	for _, e := range env {
		m := e.(map[string]any)
		v, _ := m["value"].(string)
		out[m["name"].(string)] = v
	}
	return out
}

// statusOf finds an add-on in List's result.
func statusOf(t *testing.T, m *Manager, ns, name string) Status {
	t.Helper()
	all, err := m.List(context.Background())
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	for _, s := range all {
		if s.Name == name && s.Namespace == ns {
			return s
		}
	}
	t.Fatalf("add-on %s/%s not listed: %+v", ns, name, all)
	return Status{}
}

// revisions returns the release's revision numbers and statuses, from
// Helm's storage.
func revisions(t *testing.T, cfg *rest.Config, ns, name string) []string {
	t.Helper()
	m := &Manager{Config: cfg}
	ac, err := m.actionConfig(context.Background(), ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := history(ac, name)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(hist))
	for i, r := range hist {
		out[i] = fmt.Sprintf("%d:%s", r.Version, r.Info.Status)
	}
	return out
}

// ensure loads the add-on and runs Ensure, logging the time it took.
func ensure(t *testing.T, m *Manager, a Addon) (Outcome, error) {
	t.Helper()
	loaded, err := Load(context.Background(), []Addon{a}, LoadOptions{})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	start := time.Now()
	out, err := m.Ensure(context.Background(), loaded[0])
	t.Logf("Ensure took %s: %+v (error: %v)", time.Since(start).Round(time.Millisecond), out, err)
	return out, err
}

func TestIntegrationGatewayLifecycle(t *testing.T) {
	c := suite.Cluster(t)
	cs := kubernetes.NewForConfigOrDie(c.Config)
	m, err := newManager(c.Config, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	const ns, name = "tenant", "tenant-gateway"
	base := Addon{Name: name, Chart: gatewayChart(t), Namespace: ns, Timeout: Duration(2 * time.Minute)}

	t.Run("install", func(t *testing.T) {
		out, err := ensure(t, m, base)
		if err != nil {
			t.Fatal(err)
		}
		if out.Action != ActionInstalled || out.Revision != 1 || out.Chart != "gateway" || out.Version != "1.0.0" {
			t.Errorf("outcome %+v", out)
		}
		requireAvailable(t, cs, ns, name)
		nsObj, err := cs.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
		if err != nil || nsObj.Labels[apply.LabelManagedBy] != apply.ManagedByValue {
			t.Errorf("namespace %s not created as tmbox's: %v %v", ns, nsObj.Labels, err)
		}
		s := statusOf(t, m, ns, name)
		if s.Status != "deployed" || s.Revision != 1 || s.Chart != "gateway" || s.Version != "1.0.0" || s.AppVersion != "1.0.0" {
			t.Errorf("listed as %+v", s)
		}
	})

	t.Run("re-run is a no-op", func(t *testing.T) {
		secrets := func() []string {
			l, err := cs.CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "owner=helm"})
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, s := range l.Items {
				out = append(out, s.Name+"@"+s.ResourceVersion)
			}
			return out
		}
		before := secrets()
		dep := deployment(t, cs, ns, name)
		out, err := ensure(t, m, base)
		if err != nil {
			t.Fatal(err)
		}
		if out.Action != ActionUnchanged || out.Revision != 1 {
			t.Errorf("outcome %+v", out)
		}
		if after := secrets(); strings.Join(after, ",") != strings.Join(before, ",") {
			t.Errorf("Helm's storage was written: %v, then %v", before, after)
		}
		if got := deployment(t, cs, ns, name); got.GetResourceVersion() != dep.GetResourceVersion() {
			t.Errorf("the Deployment was written (resourceVersion %s → %s)", dep.GetResourceVersion(), got.GetResourceVersion())
		}
		if s := statusOf(t, m, ns, name); s.Revision != 1 {
			t.Errorf("listed as %+v", s)
		}
	})

	changed := base
	changed.Values = map[string]any{"env": map[string]any{"TENANT": "blue"}}
	t.Run("one value changed", func(t *testing.T) {
		out, err := ensure(t, m, changed)
		if err != nil {
			t.Fatal(err)
		}
		if out.Action != ActionUpgraded || out.Revision != 2 {
			t.Errorf("outcome %+v", out)
		}
		u := requireAvailable(t, cs, ns, name)
		if got := envOf(u)["TENANT"]; got != "blue" {
			t.Errorf("TENANT=%q in the Deployment, want blue (env %v)", got, envOf(u))
		}
	})

	t.Run("upgrade refused before any write", func(t *testing.T) {
		bad := changed
		bad.Values = map[string]any{"env": map[string]any{"TENANT": "blue"}, "profile": "no-such-profile"}
		out, err := ensure(t, m, bad)
		if err == nil || !strings.Contains(err.Error(), `add-on "tenant-gateway": upgrade refused, revision 2 left as it was`) || !strings.Contains(err.Error(), "unknown profile") {
			t.Fatalf("got %v", err)
		}
		var rb *RolledBackError
		if errors.As(err, &rb) {
			t.Errorf("rolled back although nothing changed: %v", rb)
		}
		if out.Action != ActionFailed || out.Revision != 2 {
			t.Errorf("outcome %+v", out)
		}
		if got, want := strings.Join(revisions(t, c.Config, ns, name), " "), "1:superseded 2:deployed"; got != want {
			t.Errorf("history %s, want %s", got, want)
		}
	})

	t.Run("uninstall", func(t *testing.T) {
		if err := m.Uninstall(context.Background(), name, ns); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{}); err == nil {
			t.Error("the Deployment is still there")
		}
		if got := revisions(t, c.Config, ns, name); len(got) != 0 {
			t.Errorf("history left: %v", got)
		}
		if err := m.Uninstall(context.Background(), name, ns); err != nil {
			t.Errorf("second uninstall: %v", err)
		}
		if err := m.Uninstall(context.Background(), name, "no-such-namespace"); err != nil {
			t.Errorf("uninstall in a missing namespace: %v", err)
		}
	})

	// The acceptance's failure: from revision 1, a values change that
	// makes the Deployment unschedulable fails within its budget and is
	// rolled back to revision 1; Helm's failed upgrade is revision 2 and
	// its rollback revision 3. (Helm's rollback is a new revision: after
	// the value change above it would be revisions 3 and 4.)
	t.Run("reinstall", func(t *testing.T) {
		out, err := ensure(t, m, base)
		if err != nil {
			t.Fatal(err)
		}
		if out.Action != ActionInstalled || out.Revision != 1 {
			t.Errorf("outcome %+v", out)
		}
		if got, want := strings.Join(revisions(t, c.Config, ns, name), " "), "1:deployed"; got != want {
			t.Errorf("history %s, want %s", got, want)
		}
	})

	t.Run("unschedulable upgrade is rolled back", func(t *testing.T) {
		bad := base
		bad.Values = map[string]any{
			"nodeSelector": map[string]any{"tmbox.dev/no-such-node": "true"},
		}
		bad.Timeout = Duration(20 * time.Second)
		start := time.Now()
		out, err := ensure(t, m, bad)
		took := time.Since(start)
		var rb *RolledBackError
		if !errors.As(err, &rb) {
			t.Fatalf("want a *RolledBackError, got %v", err)
		}
		if rb.Failed != 2 || rb.To != 1 || rb.Revision != 3 {
			t.Errorf("rolled back %+v, want revision 2 failed, rolled back to 1 as revision 3", rb)
		}
		msg := err.Error()
		for _, want := range []string{
			`add-on "tenant-gateway": upgrade to revision 2 failed and was rolled back to revision 1 (now revision 3)`,
			"not ready after 20s",
			"Deployment tenant/tenant-gateway",
			"Unschedulable",
			"didn't match Pod's node affinity/selector",
		} {
			if !strings.Contains(msg, want) {
				t.Errorf("error lacks %q:\n%s", want, msg)
			}
		}
		if out.Action != ActionRolledBack || out.Revision != 3 {
			t.Errorf("outcome %+v", out)
		}
		if took > 20*time.Second+90*time.Second {
			t.Errorf("took %s with a 20s budget", took)
		}
		u := requireAvailable(t, cs, ns, name)
		if sel, _, _ := unstructured.NestedMap(u.Object, "spec", "template", "spec", "nodeSelector"); len(sel) != 0 {
			t.Errorf("node selector %v still in the Deployment", sel)
		}
		if got, want := strings.Join(revisions(t, c.Config, ns, name), " "), "1:superseded 2:failed 3:deployed"; got != want {
			t.Errorf("history %s, want %s", got, want)
		}
		if s := statusOf(t, m, ns, name); s.Status != "deployed" || s.Revision != 3 {
			t.Errorf("listed as %+v", s)
		}
	})

	t.Run("re-run after the rollback is a no-op", func(t *testing.T) {
		out, err := ensure(t, m, base)
		if err != nil {
			t.Fatal(err)
		}
		if out.Action != ActionUnchanged || out.Revision != 3 {
			t.Errorf("outcome %+v", out)
		}
		if got, want := strings.Join(revisions(t, c.Config, ns, name), " "), "1:superseded 2:failed 3:deployed"; got != want {
			t.Errorf("history %s, want %s", got, want)
		}
		if err := m.Uninstall(context.Background(), name, ns); err != nil {
			t.Fatal(err)
		}
	})
}

func TestIntegrationRecoverStuckRelease(t *testing.T) {
	c := suite.Cluster(t)
	cs := kubernetes.NewForConfigOrDie(c.Config)
	m, err := newManager(c.Config, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	const ns, name = "stuck", "stuck-gateway"
	good := Addon{Name: name, Chart: gatewayChart(t), Namespace: ns, Timeout: Duration(2 * time.Minute)}

	t.Run("SIGKILL during the install, then re-run", func(t *testing.T) {
		// The subprocess installs a gateway that cannot be scheduled, so
		// it sits in the wait with the release pending-install.
		stuck := good
		stuck.Values = map[string]any{"nodeSelector": map[string]any{"tmbox.dev/no-such-node": "true"}}
		stuck.Timeout = Duration(5 * time.Minute)
		spec, _ := json.Marshal(helperSpec{Kubeconfig: c.Kubeconfig, Addon: stuck})
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), helperEnv+"="+string(spec))
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		deadline := time.After(90 * time.Second)
		for pending := false; !pending; {
			select {
			case err := <-done:
				t.Fatalf("the install ended before it was killed: %v\n%s", err, logs.String())
			case <-deadline:
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("no pending-install release appeared\n%s", logs.String())
			case <-time.After(200 * time.Millisecond):
			}
			l, err := cs.CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "owner=helm,name=" + name + ",status=pending-install"})
			_, depErr := cs.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
			pending = err == nil && len(l.Items) == 1 && depErr == nil
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-done
		t.Logf("killed the install while pending-install; its log:\n%s", logs.String())
		if got := strings.Join(revisions(t, c.Config, ns, name), " "); got != "1:pending-install" {
			t.Fatalf("history %s, want 1:pending-install", got)
		}
		if s := statusOf(t, m, ns, name); s.Status != "pending-install" {
			t.Errorf("listed as %+v", s)
		}

		out, err := ensure(t, m, good)
		if err != nil {
			t.Fatal(err)
		}
		if out.Action != RecoveredPrefix+ActionInstalled || out.Revision != 1 {
			t.Errorf("outcome %+v", out)
		}
		if !strings.Contains(out.Message, "revision 1 was left pending-install by an interrupted run and never deployed: uninstalled it; then installed chart gateway 1.0.0 as revision 1") {
			t.Errorf("message %q", out.Message)
		}
		u := requireAvailable(t, cs, ns, name)
		if sel, _, _ := unstructured.NestedMap(u.Object, "spec", "template", "spec", "nodeSelector"); len(sel) != 0 {
			t.Errorf("node selector %v still in the Deployment", sel)
		}
		if s := statusOf(t, m, ns, name); s.Status != "deployed" || s.Revision != 1 {
			t.Errorf("listed as %+v", s)
		}
	})

	t.Run("pending-upgrade left behind, then re-run", func(t *testing.T) {
		// What a run killed during an upgrade leaves: a newer revision
		// pending-upgrade in Helm's storage above the deployed one.
		ac, err := m.actionConfig(context.Background(), ns, nil)
		if err != nil {
			t.Fatal(err)
		}
		cur, err := ac.Releases.Last(name)
		if err != nil {
			t.Fatal(err)
		}
		next := *cur
		next.Info = &release.Info{Status: release.StatusPendingUpgrade, Description: "Preparing upgrade", FirstDeployed: cur.Info.FirstDeployed, LastDeployed: cur.Info.LastDeployed}
		next.Version = cur.Version + 1
		next.Config = map[string]any{"env": map[string]any{"HALF": "done"}}
		if err := ac.Releases.Create(&next); err != nil {
			t.Fatal(err)
		}
		out, err := ensure(t, m, good)
		if err != nil {
			t.Fatal(err)
		}
		if out.Action != RecoveredPrefix+ActionUnchanged || out.Revision != 3 {
			t.Errorf("outcome %+v", out)
		}
		if !strings.Contains(out.Message, "revision 2 was left pending-upgrade by an interrupted run: rolled back to revision 1 (revision 3)") {
			t.Errorf("message %q", out.Message)
		}
		if got, want := strings.Join(revisions(t, c.Config, ns, name), " "), "1:superseded 2:failed 3:deployed"; got != want {
			t.Errorf("history %s, want %s", got, want)
		}
		requireAvailable(t, cs, ns, name)
	})

	t.Run("helm list shows only tmbox's releases", func(t *testing.T) {
		// A release tmbox does not manage (installed as helm's CLI would).
		ac, err := m.actionConfig(context.Background(), "default", nil)
		if err != nil {
			t.Fatal(err)
		}
		in := action.NewInstall(ac)
		in.ReleaseName, in.Namespace = "not-tmbox", "default"
		in.DisableHooks = true
		ch, err := loader.LoadDir(demoDir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := in.Run(ch, map[string]any{"sidecar": map[string]any{"enabled": false}}); err != nil {
			t.Fatal(err)
		}
		all, err := m.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range all {
			if s.Name == "not-tmbox" {
				t.Errorf("List shows a release tmbox does not manage: %+v", s)
			}
		}
		if err := m.Uninstall(context.Background(), "not-tmbox", "default"); err != nil {
			t.Errorf("uninstall: %v", err)
		}
	})
}
