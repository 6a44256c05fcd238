package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/tmbox/tmbox/installer"
	"github.com/tmbox/tmbox/installer/apply"
	"github.com/tmbox/tmbox/installer/settings"
	"github.com/tmbox/tmbox/installer/support"
)

// TestSupportBundleFlags: bad bounds, a file name that is not a .tar.gz,
// and an unredacted bundle whose name does not say so are refused with
// the usage code before anything is collected or written.
func TestSupportBundleFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unredacted name must say so", []string{"--redact=false", "--file", "bundle.tar.gz"}, `put "unredacted" in it`},
		{"not a tar.gz", []string{"--file", "json"}, "name it FILE.tar.gz"},
		{"-o is the format", []string{"-o", "case.tar.gz"}, "-o is the output format now (text, json, yaml); use --file FILE"},
		{"--output is the format", []string{"--output", "case.tar.gz"}, "-o is the output format now"},
		{"since", []string{"--since", "0s"}, "--since must be positive"},
		{"max log lines", []string{"--max-log-lines", "0"}, "--max-log-lines must be positive"},
		{"timeout", []string{"--timeout", "-1s"}, "--timeout must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			_, errOut, err := run(t, append([]string{"support-bundle", "--kubeconfig", filepath.Join(dir, "none")}, tt.args...)...)
			if code := exitCode(context.Background(), err); code != exitUsage || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("exit %d, err %v; want usage error %q", code, err, tt.want)
			}
			if strings.Contains(errOut, "[support] collecting") {
				t.Errorf("collected before refusing:\n%s", errOut)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("a refused run wrote %v", entries)
			}
		})
	}
}

// TestSupportBundleNames: the default name carries the UTC time, and
// UNREDACTED when it is not redacted; an explicit name is kept.
func TestSupportBundleNames(t *testing.T) {
	at := time.Date(2026, 3, 1, 13, 4, 5, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		f    supportFlags
		want string
	}{
		{supportFlags{redact: true}, "tmbox-support-20260301T120405Z.tar.gz"},
		{supportFlags{redact: false}, "tmbox-support-UNREDACTED-20260301T120405Z.tar.gz"},
		{supportFlags{redact: false, file: "/tmp/case-Unredacted.tgz"}, "/tmp/case-Unredacted.tgz"},
		{supportFlags{redact: true, file: "x.tar.gz"}, "x.tar.gz"},
	}
	for _, tt := range tests {
		tt.f.since, tt.f.maxLogLines, tt.f.timeout = time.Hour, 1, time.Minute
		got, err := tt.f.bundlePath(at)
		if err != nil || got != tt.want {
			t.Errorf("%+v: %q, %v; want %q", tt.f, got, err, tt.want)
		}
	}
}

// TestSupportStateFields: the state fields the bundle reads by name are
// installer.State's JSON names.
func TestSupportStateFields(t *testing.T) {
	st := installer.State{Release: "1.21", Journal: []installer.Operation{{ID: "x"}},
		Inventory: map[string][]apply.ObjectKey{"istio": {{Kind: "ConfigMap", Namespace: "istio-system", Name: "c"}}}}
	st.Platform = &settings.Settings{Domain: "example.com"}
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"release", "platform", "journal", "inventory"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("installer.State has no JSON field %q: %s", k, raw)
		}
	}
	if !strings.Contains(string(doc["inventory"]), `"namespace":"istio-system"`) {
		t.Errorf("inventory keys: %s", doc["inventory"])
	}
}

// unreachableKubeconfig writes a kubeconfig whose server refuses
// connections.
func unreachableKubeconfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "unreachable")
	const kc = `apiVersion: v1
kind: Config
clusters: [{name: x, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: "not-a-real-token"}}]
contexts: [{name: c, context: {cluster: x, user: u}}]
current-context: c
`
	if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// extractBundle extracts a bundle into a new directory.
func extractBundle(t *testing.T, file string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return dir
		}
		if err != nil {
			t.Fatal(err)
		}
		if !filepath.IsLocal(hdr.Name) || hdr.Typeflag != tar.TypeReg {
			t.Fatalf("entry %q (type %c) in the bundle", hdr.Name, hdr.Typeflag)
		}
		p := filepath.Join(dir, hdr.Name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readIndex reads an extracted bundle's index and checks that every
// listed file exists with its size.
func readIndex(t *testing.T, dir string) support.Index {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, support.IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	var ix support.Index
	if err := json.Unmarshal(data, &ix); err != nil {
		t.Fatal(err)
	}
	for _, f := range ix.Files {
		info, err := os.Stat(filepath.Join(dir, f.Path))
		if err != nil || info.Size() != f.Size {
			t.Errorf("listed %+v: %v", f, err)
		}
	}
	return ix
}

func indexed(ix support.Index, name string) (support.Collected, bool) {
	for _, c := range ix.Collectors {
		if c.Name == name {
			return c, true
		}
	}
	return support.Collected{}, false
}

func hasFile(ix support.Index, path string) bool {
	return slices.ContainsFunc(ix.Files, func(f support.File) bool { return f.Path == path })
}

// grepTree reports every file under dir that holds one of values.
func grepTree(t *testing.T, dir string, values ...*regexp.Regexp) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, v := range values {
			if loc := v.FindIndex(data); loc != nil {
				rel, _ := filepath.Rel(dir, p)
				t.Errorf("%s holds %q: …%s…", rel, v, data[max(0, loc[0]-60):min(len(data), loc[1]+20)])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// plantedValues are the credentials the tests plant; none may be in a
// redacted bundle.
func plantedValues() []*regexp.Regexp {
	return []*regexp.Regexp{
		regexp.MustCompile(`hunter2`), regexp.MustCompile(`abc123`), regexp.MustCompile(`s3cr3t-value`),
		regexp.MustCompile(`(?i)bearer\s+xyz`), regexp.MustCompile(`pw@`),
	}
}

// plantLog writes a tmbox log file holding a bearer header and a URL with
// a password into the state dir.
func plantLog(t *testing.T, stateDir string) {
	t.Helper()
	dir := filepath.Join(stateDir, "logs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	line := `time=2026-03-01T12:00:00Z level=DEBUG msg="request" header="Authorization: Bearer xyz" url=https://user:pw@host/charts` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "tmbox-"+time.Now().Format("20060102-150405")+".log"), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkUnreachable runs support-bundle against a cluster that refuses
// connections: the host part and tmbox's log are written, the command
// says what it could not collect, and exits 1.
func checkUnreachable(t *testing.T, out string, extra ...string) support.Index {
	t.Helper()
	args := append([]string{"support-bundle", "--kubeconfig", unreachableKubeconfig(t), "--file", out, "--mirror", upstreamDir(t)}, extra...)
	start := time.Now()
	stdout, errOut, err := run(t, args...)
	t.Logf("unreachable: %s", time.Since(start).Round(time.Millisecond))
	if code := exitCode(context.Background(), err); code != exitError || !strings.Contains(err.Error(), "nothing could be collected from the cluster") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("exit %d, err %v\n%s", code, err, errOut)
	}
	if strings.TrimSpace(stdout) != out {
		t.Errorf("stdout %q, want the bundle's path", stdout)
	}
	for _, want := range []string{"[support] collecting the host's OS", "[support] could not collect the cluster's version", "[support] skipped nodes", "[support] wrote " + out} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	dir := extractBundle(t, out)
	ix := readIndex(t, dir)
	if ix.Cluster.Reachable || !strings.Contains(ix.Cluster.Error, "connection refused") {
		t.Errorf("index cluster %+v", ix.Cluster)
	}
	for _, f := range []string{"host/os-release", "host/uname.txt", "host/meminfo", "host/disk.json", "tmbox/version.json", "tmbox/preflight.json"} {
		if !hasFile(ix, f) {
			t.Errorf("no %s without the cluster", f)
		}
	}
	if !slices.ContainsFunc(ix.Files, func(f support.File) bool { return strings.HasPrefix(f.Path, "tmbox/logs/") }) {
		t.Error("tmbox's log file is not in the bundle")
	}
	if c, _ := indexed(ix, "host/engine"); c.Status != support.StatusSkipped || !strings.Contains(c.Error, "no container engine") {
		t.Errorf("host/engine without an engine: %+v", c)
	}
	for _, c := range ix.Collectors {
		if (strings.HasPrefix(c.Name, "cluster/") || c.Name == "tmbox/state") && (c.Status == support.StatusOK || c.Error == "") {
			t.Errorf("%s: %s %q without the cluster", c.Name, c.Status, c.Error)
		}
	}
	if ix.Redacted {
		grepTree(t, dir, plantedValues()...)
	}
	return ix
}

// TestSupportBundleUnreachable: without a reachable cluster the bundle
// holds this host's part; --inspect prints its index; an unredacted
// bundle keeps the values and is named so.
func TestSupportBundleUnreachable(t *testing.T) {
	home := noEngineHost(t)
	plantLog(t, filepath.Join(home, "state", "tmbox"))
	dir := t.TempDir()
	out := filepath.Join(dir, "b.tar.gz")
	checkUnreachable(t, out)

	stdout, _, err := run(t, "support-bundle", "--inspect", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"redacted: yes", "bearer-token 1", "url-credentials 1", "NOT reachable", "connection refused", "host/engine", "skipped", "no container engine", "(same reason)", "host/os-release"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--inspect lacks %q:\n%s", want, stdout)
		}
	}

	raw := filepath.Join(dir, "case-unredacted.tar.gz")
	ix := checkUnreachable(t, raw, "--redact=false")
	if ix.Redacted {
		t.Error("--redact=false wrote a redacted index")
	}
	data, err := os.ReadFile(filepath.Join(extractBundle(t, raw), support.ReportFile))
	if err != nil || !strings.Contains(string(data), `"redacted": false`) {
		t.Errorf("report of an unredacted bundle: %s %v", data, err)
	}
	if stdout, _, _ := run(t, "support-bundle", "--inspect", raw); !strings.Contains(stdout, "redacted: NO") {
		t.Errorf("--inspect of an unredacted bundle:\n%s", stdout)
	}
	if _, _, err := run(t, "support-bundle", "--inspect", filepath.Join(dir, "missing.tar.gz")); err == nil {
		t.Error("--inspect of a missing file succeeded")
	}
}

// TestIntegrationSupportBundle: the bundle of an installed release holds
// every part, lists every file, and none of the planted credentials (a
// Secret's value, a ConfigMap password, a Deployment's env, a bearer
// header and a URL password in tmbox's log); the report counts each rule.
// Then, with the cluster unreachable, the host part is still written.
func TestIntegrationSupportBundle(t *testing.T) {
	c := startOwnCluster(t, suite.Cluster(t))
	home := noEngineHost(t)
	start := time.Now()
	if _, errOut, err := run(t, "install", "--kubeconfig", c.Kubeconfig, "--release", "1.21", "--components", "istio,knative-serving,net-istio", "--mirror", upstreamDir(t), "--yes"); err != nil {
		t.Fatalf("install: %v\n%s", err, errOut)
	}
	t.Logf("install: %s", time.Since(start).Round(time.Second))

	ctx := context.Background()
	client := kubernetes.NewForConfigOrDie(c.Config)
	labels := map[string]string{apply.LabelManagedBy: apply.ManagedByValue}
	const ns = "knative-serving"
	if _, err := client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "support-test", Labels: labels},
		Data: map[string][]byte{"api-key": []byte("s3cr3t-value")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "support-test", Labels: labels},
		Data: map[string]string{"password": "hunter2"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	one := int32(1)
	app := map[string]string{"app": "support-test"}
	if _, err := client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "support-test", Labels: labels},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: app}, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: app},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1",
				Env: []corev1.EnvVar{{Name: "API_TOKEN", Value: "abc123"}}}}},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=support-test"})
		if err == nil && len(pods.Items) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the planted Deployment's pod did not appear: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	stateDir := filepath.Join(home, "state", "tmbox")
	plantLog(t, stateDir)

	out := filepath.Join(t.TempDir(), "bundle.tar.gz")
	start = time.Now()
	stdout, errOut, err := run(t, "support-bundle", "--kubeconfig", c.Kubeconfig, "--file", out, "--mirror", upstreamDir(t))
	took := time.Since(start)
	t.Logf("support-bundle: %s\n%s", took.Round(time.Millisecond), errOut)
	if err != nil {
		t.Fatalf("support-bundle: %v", err)
	}
	if strings.TrimSpace(stdout) != out {
		t.Errorf("stdout %q", stdout)
	}
	if took > support.DefaultTimeout {
		t.Errorf("took %s, over the default timeout", took)
	}
	for _, want := range []string{"[support] collecting nodes", "[support] collecting the objects tmbox manages", "[support] collecting container logs", "[support] wrote " + out} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	info, err := os.Stat(out)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("bundle file %v, mode %v: want 0600", err, info.Mode())
	}
	dir := extractBundle(t, out)
	ix := readIndex(t, dir)

	t.Run("contents", func(t *testing.T) {
		if !ix.Cluster.Reachable || !ix.Redacted {
			t.Errorf("index: reachable %v, redacted %v", ix.Cluster.Reachable, ix.Redacted)
		}
		for _, f := range []string{
			"tmbox/version.json", "tmbox/state.json", "tmbox/settings.json", "tmbox/journal.json", "tmbox/preflight.json",
			"cluster/version.json", "cluster/nodes.yaml", "cluster/namespaces.json", "cluster/crds.yaml",
			"cluster/managed/secrets.yaml", "cluster/managed/configmaps.yaml", "cluster/managed/deployments.apps.yaml", "cluster/managed/namespaces.yaml",
			"cluster/managed/customresourcedefinitions.apiextensions.k8s.io.yaml",
			"cluster/validatingwebhookconfigurations.yaml", "cluster/mutatingwebhookconfigurations.yaml", "cluster/apiservices.yaml",
			"cluster/pods/knative-serving.yaml", "cluster/pods/istio-system.yaml",
			"host/os-release", "host/uname.txt", "host/meminfo", "host/disk.json",
			support.ReportFile,
		} {
			if !hasFile(ix, f) {
				t.Errorf("no %s", f)
			}
		}
		if !slices.ContainsFunc(ix.Files, func(f support.File) bool { return strings.HasPrefix(f.Path, "cluster/events/") }) {
			t.Error("no events")
		}
		if !slices.ContainsFunc(ix.Files, func(f support.File) bool { return strings.HasPrefix(f.Path, "tmbox/logs/tmbox-") }) {
			t.Error("tmbox's log file is not in the bundle")
		}
		for _, c := range ix.Collectors {
			t.Logf("%-20s %-8s %3d files %5.2fs %s", c.Name, c.Status, c.Files, c.Seconds, c.Error)
			switch c.Name {
			case "host/engine":
				if c.Status != support.StatusSkipped || !strings.Contains(c.Error, "no container engine") {
					t.Errorf("host/engine: %+v", c)
				}
			case "cluster/logs":
				// kwok's pods have no kubelet to serve logs: the
				// collector says so instead of failing the bundle.
				if c.Status == support.StatusSkipped || (c.Status == support.StatusFailed && !strings.Contains(c.Error, "container logs could be read")) {
					t.Errorf("cluster/logs: %+v", c)
				}
			default:
				if c.Status != support.StatusOK && c.Status != support.StatusPartial {
					t.Errorf("%s: %s %s %v", c.Name, c.Status, c.Error, c.Warnings)
				}
			}
		}
		read := func(p string) string {
			data, err := os.ReadFile(filepath.Join(dir, p))
			if err != nil {
				t.Fatal(err)
			}
			return string(data)
		}
		sec := read("cluster/managed/secrets.yaml")
		if !strings.Contains(sec, "name: support-test") || !strings.Contains(sec, "- api-key") {
			t.Errorf("the planted Secret's name and key are not listed:\n%s", sec)
		}
		if !strings.Contains(read("tmbox/state.json"), `"release":"1.21"`) || !strings.Contains(read("tmbox/journal.json"), `"result": "succeeded"`) {
			t.Error("state or journal do not hold the install")
		}
		if !strings.Contains(read("tmbox/preflight.json"), `"release": "1.21"`) {
			t.Error("preflight did not run for the installed release")
		}
		if !strings.Contains(read("cluster/pods/knative-serving.yaml"), "name: API_TOKEN") {
			t.Error("the planted pod's env is not in the pods")
		}
		if !strings.Contains(read("cluster/managed/configmaps.yaml"), `password: "`+support.Mask+`"`) {
			t.Error("the planted ConfigMap's password is not masked in place")
		}
	})

	t.Run("no planted value", func(t *testing.T) {
		grepTree(t, dir, plantedValues()...)
	})

	t.Run("report", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(dir, support.ReportFile))
		if err != nil {
			t.Fatal(err)
		}
		var rep support.Report
		if err := json.Unmarshal(data, &rep); err != nil {
			t.Fatal(err)
		}
		byRule := map[string]int{}
		for _, r := range rep.Redactions {
			byRule[r.Rule] += r.Count
			if _, err := os.Stat(filepath.Join(dir, r.File)); err != nil {
				t.Errorf("report names %s: %v", r.File, err)
			}
		}
		t.Logf("redactions by rule: %v", byRule)
		for _, rule := range []string{"key-value", "env-pair", "bearer-token", "url-credentials"} {
			if byRule[rule] == 0 {
				t.Errorf("rule %s counted nothing", rule)
			}
		}
		if strings.Contains(string(data), "hunter2") {
			t.Error("the report holds a value")
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		checkUnreachable(t, filepath.Join(t.TempDir(), "unreachable.tar.gz"))
	})
}
