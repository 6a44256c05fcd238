package support

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/tmbox/tmbox/internal/engine"
)

// planted are the fixture's credentials: none may appear in a redacted
// bundle.
func planted() []string {
	return []string{"hunter2", "abc123", "s3cr3t-value", "Bearer xyz", "pw@", "hunter9", "c2VjcmV0LXZhbHVl"}
}

// now is the fixture's clock.
func now() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }

func managed() map[string]string {
	return map[string]string{managedByLabel: managedByValue}
}

// fixture is a fake cluster holding a release, a host and a state dir.
type fixture struct {
	client   *kubefake.Clientset
	dyn      *dynamicfake.FakeDynamicClient
	stateDir string
	root     string
	// logCalls counts container log reads.
	mu       sync.Mutex
	logCalls int
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{stateDir: t.TempDir(), root: t.TempDir()}
	writeFile(t, filepath.Join(f.root, "etc/os-release"), "NAME=\"Test Linux\"\nVERSION_ID=1\n")
	writeFile(t, filepath.Join(f.root, "proc/meminfo"), "MemTotal: 16384 kB\n")
	writeFile(t, filepath.Join(f.stateDir, "logs/tmbox-20260301-110000.log"), "level=INFO msg=old\n")
	writeFile(t, filepath.Join(f.stateDir, "logs/tmbox-20260301-115900.log"), "level=DEBUG msg=\"GET\" header=\"Authorization: Bearer xyz\"\n")
	old := now().Add(-2 * time.Hour)
	if err := os.Chtimes(filepath.Join(f.stateDir, "logs/tmbox-20260301-110000.log"), old, old); err != nil {
		t.Fatal(err)
	}

	state := `{"release":"1.21","components":{"istio":{"version":"1.28.6","release":"1.21"}},"platform":{"domain":"example.com"},` +
		`"inventory":{"knative-serving":[{"kind":"ConfigMap","namespace":"knative-serving","name":"config-x"},{"kind":"Deployment","group":"apps","namespace":"knative-inventory","name":"d"}]},` +
		`"journal":[{"id":"install-1","kind":"install","to":"1.21","started":"2026-03-01T11:00:00Z","result":"succeeded"}]}`
	typed := []runtime.Object{
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{
			Capacity:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "tmbox-system", Name: "tmbox-state", Labels: managed()}, Data: map[string]string{"state.json": state}},
		&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "tmbox-system", Name: "tmbox-lock", Annotations: map[string]string{"tmbox.dev/holder": `{"user":"ops","command":"tmbox upgrade --to 1.22"}`}}},
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "knative-serving", Name: "controller-1"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "controller", Image: "ko://controller",
				Env: []corev1.EnvVar{{Name: "API_TOKEN", Value: "abc123"}, {Name: "LOG_LEVEL", Value: "debug"}}}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "controller", RestartCount: 1}}},
		},
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "knative-serving", Name: "webhook-1"},
			Spec:       corev1.PodSpec{InitContainers: []corev1.Container{{Name: "init"}}, Containers: []corev1.Container{{Name: "webhook"}}},
		},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "not-ours"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}},
		&corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "knative-serving", Name: "recent"}, Reason: "BackOff", Message: "Back-off restarting failed container",
			LastTimestamp: metav1.NewTime(now().Add(-10 * time.Minute))},
		&corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "knative-serving", Name: "stale"}, Reason: "Stale", Message: "from yesterday",
			LastTimestamp: metav1.NewTime(now().Add(-24 * time.Hour))},
	}
	f.client = kubefake.NewClientset(typed...)
	f.client.Resources = []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{
			{Name: "configmaps", Kind: "ConfigMap", Namespaced: true, Verbs: []string{"get", "list"}},
			{Name: "secrets", Kind: "Secret", Namespaced: true, Verbs: []string{"get", "list"}},
			{Name: "namespaces", Kind: "Namespace", Verbs: []string{"get", "list"}},
			{Name: "pods", Kind: "Pod", Namespaced: true, Verbs: []string{"get", "list"}},
			{Name: "pods/log", Kind: "Pod", Namespaced: true, Verbs: []string{"get"}},
			{Name: "events", Kind: "Event", Namespaced: true, Verbs: []string{"get", "list"}},
			{Name: "bindings", Kind: "Binding", Namespaced: true, Verbs: []string{"create"}},
		}},
		{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{{Name: "deployments", Kind: "Deployment", Namespaced: true, Verbs: []string{"get", "list"}}}},
		{GroupVersion: "apiextensions.k8s.io/v1", APIResources: []metav1.APIResource{{Name: "customresourcedefinitions", Kind: "CustomResourceDefinition", Verbs: []string{"get", "list"}}}},
	}

	u := func(apiVersion, kind, ns, name string, labels map[string]string, fields map[string]any) runtime.Object {
		o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind}}
		for k, v := range fields {
			o.Object[k] = v
		}
		o.SetNamespace(ns)
		o.SetName(name)
		o.SetLabels(labels)
		o.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "tmbox", Operation: metav1.ManagedFieldsOperationApply}})
		return o
	}
	gvrs := map[schema.GroupVersionResource]string{
		{Version: "v1", Resource: "configmaps"}:                                                             "ConfigMapList",
		{Version: "v1", Resource: "secrets"}:                                                                "SecretList",
		{Version: "v1", Resource: "namespaces"}:                                                             "NamespaceList",
		{Version: "v1", Resource: "pods"}:                                                                   "PodList",
		{Group: "apps", Version: "v1", Resource: "deployments"}:                                             "DeploymentList",
		{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}:               "CustomResourceDefinitionList",
		{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"}: "ValidatingWebhookConfigurationList",
		{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"}:   "MutatingWebhookConfigurationList",
		{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}:                           "APIServiceList",
	}
	f.dyn = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), gvrs,
		u("v1", "Namespace", "", "knative-serving", managed(), nil),
		u("v1", "Namespace", "", "tmbox-system", managed(), nil),
		u("v1", "Namespace", "", "kube-system", nil, nil),
		u("v1", "ConfigMap", "knative-serving", "config-x", managed(), map[string]any{"data": map[string]any{"password": "hunter2", "level": "info"}}),
		u("v1", "ConfigMap", "kube-system", "foreign", nil, map[string]any{"data": map[string]any{"x": "y"}}),
		u("v1", "Secret", "knative-serving", "creds", managed(), map[string]any{"type": "Opaque", "data": map[string]any{"token": "c2VjcmV0LXZhbHVl"}, "stringData": map[string]any{"plain": "s3cr3t-value"}}),
		u("apps/v1", "Deployment", "knative-serving", "controller", managed(), map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"containers": []any{map[string]any{"name": "controller", "env": []any{map[string]any{"name": "API_TOKEN", "value": "abc123"}}}}}}}}),
		u("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "services.serving.knative.dev", managed(), map[string]any{"spec": map[string]any{
			"group": "serving.knative.dev", "scope": "Namespaced", "names": map[string]any{"kind": "Service"},
			"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true, "schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object"}}},
				map[string]any{"name": "v1beta1", "served": false}}}}),
		u("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "", "config.webhook.serving.knative.dev", managed(), map[string]any{"webhooks": []any{
			map[string]any{"name": "config.webhook.serving.knative.dev", "clientConfig": map[string]any{"caBundle": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"}}}}),
		u("apiregistration.k8s.io/v1", "APIService", "", "v1.apps", nil, map[string]any{"spec": map[string]any{"group": "apps"}}),
	)
	return f
}

// logs is the fake container log source: the controller logs
// credentials, its previous instance too; the webhook never restarted.
func (f *fixture) logs(_ context.Context, ns, pod string, o *corev1.PodLogOptions) ([]byte, error) {
	f.mu.Lock()
	f.logCalls++
	f.mu.Unlock()
	switch {
	case pod == "controller-1" && !o.Previous:
		var b strings.Builder
		for i := range 1000 {
			fmt.Fprintf(&b, "line %d\n", i)
		}
		b.WriteString("GET /api Authorization: Bearer xyz\nclone https://user:pw@host/repo\n")
		return []byte(b.String()), nil
	case pod == "controller-1":
		return []byte("panic: password=hunter2\n"), nil
	case o.Previous:
		return nil, fmt.Errorf(`previous terminated container %q in pod %q not found`, o.Container, pod)
	case o.Container == "init":
		return nil, errors.New("container init is waiting to start")
	}
	return []byte("ok\n"), nil
}

func (f *fixture) options(redact bool) Options {
	return Options{
		Redact: redact, Now: func() time.Time { return now() }, StateDir: f.stateDir, MaxLogFiles: 1,
		Version: map[string]string{"version": "test"},
		Preflight: func(_ context.Context, release string) (any, error) {
			return map[string]any{"release": release, "passed": true}, nil
		},
		Cluster: Cluster{Client: f.client, Dynamic: f.dyn, Describe: "fake", Logs: LogSourceFunc(f.logs),
			State: StateRef{Namespace: "tmbox-system", Name: "tmbox-state", Key: "state.json"}, LockName: "tmbox-lock"},
		Host: Host{
			Root: f.root,
			Engine: func() (engine.Binary, error) {
				return engine.Binary{Name: "docker", Family: "docker", Path: "/usr/bin/docker"}, nil
			},
			Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
				if args[0] == "info" {
					return []byte("Server Version: 28.0\nRegistry Mirrors:\n https://bob:hunter9@mirror.example.com/\n"), nil
				}
				return []byte("CONTAINER ID  IMAGE  STATUS  NAMES\nabc  kindest/node  Up 2 hours  tmbox-control-plane\n"), nil
			},
		},
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// untar reads every file of a bundle.
func untar(t *testing.T, data []byte) (map[string][]byte, []string) {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	var order []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[hdr.Name] = b
		order = append(order, hdr.Name)
	}
	return files, order
}

func collectorOf(ix Index, name string) Collected {
	for _, c := range ix.Collectors {
		if c.Name == name {
			return c
		}
	}
	return Collected{}
}

// TestWriteRedacted: a bundle of a fake cluster holds every part, lists
// every file with its size, and none of the planted credentials; the
// report counts each rule; Inspect reads the same index back.
func TestWriteRedacted(t *testing.T) {
	f := newFixture(t)
	var progress []Progress
	o := f.options(true)
	o.Progress = func(p Progress) { progress = append(progress, p) }
	var buf bytes.Buffer
	res, err := Write(context.Background(), &buf, o)
	if err != nil {
		t.Fatal(err)
	}
	files, order := untar(t, buf.Bytes())

	t.Run("contents", func(t *testing.T) {
		for _, want := range []string{
			"tmbox/version.json", "tmbox/state.json", "tmbox/settings.json", "tmbox/journal.json", "tmbox/preflight.json",
			"tmbox/logs/tmbox-20260301-115900.log", "tmbox/lock.yaml",
			"cluster/version.json", "cluster/nodes.yaml", "cluster/managed/configmaps.yaml", "cluster/managed/secrets.yaml",
			"cluster/managed/namespaces.yaml", "cluster/managed/deployments.apps.yaml", "cluster/namespaces.json", "cluster/crds.yaml",
			"cluster/validatingwebhookconfigurations.yaml", "cluster/mutatingwebhookconfigurations.yaml", "cluster/apiservices.yaml",
			"cluster/pods/knative-serving.yaml", "cluster/events/knative-serving.yaml",
			"cluster/logs/knative-serving/controller-1/controller.log", "cluster/logs/knative-serving/controller-1/controller.previous.log",
			"cluster/logs/knative-serving/webhook-1/webhook.log",
			"host/os-release", "host/uname.txt", "host/meminfo", "host/disk.json", "host/engine.json", "host/engine-info.txt", "host/kind-containers.txt",
			IndexFile, ReportFile,
		} {
			if _, ok := files[want]; !ok {
				t.Errorf("no %s in %v", want, order)
			}
		}
		for name := range files {
			if strings.Contains(name, "kube-system") || strings.Contains(name, "tmbox-20260301-110000") || strings.Contains(name, "init.log") {
				t.Errorf("%s should not be collected", name)
			}
		}
		if order[len(order)-1] != IndexFile {
			t.Errorf("index is not last: %v", order)
		}
		if got := string(files["tmbox/preflight.json"]); !strings.Contains(got, `"release": "1.21"`) {
			t.Errorf("preflight ran for another release: %s", got)
		}
		if got := string(files["tmbox/settings.json"]); !strings.Contains(got, `"domain": "example.com"`) {
			t.Errorf("settings: %s", got)
		}
		if got := string(files["tmbox/lock.yaml"]); !strings.Contains(got, "tmbox upgrade --to 1.22") || !strings.Contains(got, "kind: Lease") {
			t.Errorf("lock: %s", got)
		}
		if got := string(files["tmbox/journal.json"]); !strings.Contains(got, "install-1") {
			t.Errorf("journal: %s", got)
		}
		ev := string(files["cluster/events/knative-serving.yaml"])
		if !strings.Contains(ev, "Back-off") || strings.Contains(ev, "from yesterday") {
			t.Errorf("events beyond --since or missing:\n%s", ev)
		}
		if got := string(files["cluster/managed/configmaps.yaml"]); strings.Contains(got, "foreign") || strings.Contains(got, "managedFields") {
			t.Errorf("managed objects hold a foreign object or managedFields:\n%s", got)
		}
		sec := string(files["cluster/managed/secrets.yaml"])
		for _, want := range []string{"name: creds", "namespace: knative-serving", "type: Opaque", "- plain", "- token"} {
			if !strings.Contains(sec, want) {
				t.Errorf("secret lacks %q:\n%s", want, sec)
			}
		}
		if regexp.MustCompile(`(?m)^\s*(data|stringData|labels|annotations):`).MatchString(sec) {
			t.Errorf("secret holds more than keys:\n%s", sec)
		}
		if got := string(files["cluster/validatingwebhookconfigurations.yaml"]); strings.Contains(got, "LS0tLS1") || !strings.Contains(got, "omitted: 36 bytes") {
			t.Errorf("caBundle not omitted:\n%s", got)
		}
		crds := string(files["cluster/crds.yaml"])
		if !strings.Contains(crds, "services.serving.knative.dev") || !strings.Contains(crds, "served:\n  - v1\n") {
			t.Errorf("crds:\n%s", crds)
		}
		if got := string(files["cluster/managed/customresourcedefinitions.apiextensions.k8s.io.yaml"]); !strings.Contains(got, "schema: '(omitted: 37 bytes)'") || strings.Contains(got, "openAPIV3Schema") {
			t.Errorf("managed CRD schemas not omitted:\n%s", got)
		}
		var nss map[string]string
		if err := json.Unmarshal(files["cluster/namespaces.json"], &nss); err != nil {
			t.Fatal(err)
		}
		for _, ns := range []string{"knative-serving", "tmbox-system", "knative-inventory"} {
			if _, ok := nss[ns]; !ok {
				t.Errorf("namespace %s not a release namespace: %v", ns, nss)
			}
		}
		if _, ok := nss["kube-system"]; ok {
			t.Errorf("kube-system is a release namespace: %v", nss)
		}
		log := string(files["cluster/logs/knative-serving/controller-1/controller.log"])
		if n := strings.Count(log, "\n"); n != DefaultMaxLogLines {
			t.Errorf("controller log has %d lines, want %d", n, DefaultMaxLogLines)
		}
		if !strings.Contains(log, "Authorization: Bearer "+Mask) || !strings.Contains(log, "https://user:"+Mask+"@host") {
			t.Errorf("log not redacted in place:\n%s", log[len(log)-200:])
		}
	})

	t.Run("no planted value survives", func(t *testing.T) {
		for name, data := range files {
			for _, s := range planted() {
				if bytes.Contains(data, []byte(s)) {
					t.Errorf("%s holds %q", name, s)
				}
			}
		}
	})

	t.Run("index", func(t *testing.T) {
		var ix Index
		if err := json.Unmarshal(files[IndexFile], &ix); err != nil {
			t.Fatal(err)
		}
		if !ix.Redacted || !ix.Cluster.Reachable || ix.Format != Format || ix.Since != "1h0m0s" || ix.MaxLogLines != DefaultMaxLogLines {
			t.Errorf("index header %+v", ix)
		}
		listed := map[string]bool{}
		for _, fl := range ix.Files {
			listed[fl.Path] = true
			data, ok := files[fl.Path]
			if !ok || int64(len(data)) != fl.Size || fl.Collector == "" {
				t.Errorf("listed %+v: in archive %v, %d bytes", fl, ok, len(data))
			}
		}
		for name := range files {
			if !listed[name] && name != IndexFile {
				t.Errorf("%s is not listed", name)
			}
		}
		if len(ix.Collectors) != len((&run{}).collectors()) {
			t.Errorf("%d collectors in the index", len(ix.Collectors))
		}
		for _, c := range ix.Collectors {
			if c.Status == StatusFailed || c.Status == StatusSkipped {
				t.Errorf("collector %s %s: %s", c.Name, c.Status, c.Error)
			}
		}
		logs := collectorOf(ix, "cluster/logs")
		if logs.Status != StatusPartial || len(logs.Warnings) != 1 || !strings.Contains(logs.Warnings[0], "init is waiting") {
			t.Errorf("logs collector %+v: want the init container's failure alone as a warning", logs)
		}
		if got := collectorOf(ix, "tmbox/logs"); !slices.ContainsFunc(got.Notes, func(n string) bool { return strings.Contains(n, "newest 1 of 2") }) {
			t.Errorf("tmbox/logs notes %v", got.Notes)
		}
		if len(progress) != 2*len(ix.Collectors) || progress[0].Done || !progress[1].Done {
			t.Errorf("progress: %d events for %d collectors", len(progress), len(ix.Collectors))
		}
	})

	t.Run("report", func(t *testing.T) {
		var rep Report
		if err := json.Unmarshal(files[ReportFile], &rep); err != nil {
			t.Fatal(err)
		}
		byRule := map[string]int{}
		for _, r := range rep.Redactions {
			if r.Count <= 0 {
				t.Errorf("report line %+v", r)
			}
			if _, ok := files[r.File]; !ok {
				t.Errorf("report names %s, not in the archive", r.File)
			}
			byRule[r.Rule] += r.Count
		}
		for _, rule := range []string{"key-value", "env-pair", "bearer-token", "url-credentials"} {
			if byRule[rule] == 0 {
				t.Errorf("rule %s counted nothing: %v", rule, byRule)
			}
		}
		if !rep.Redacted || len(rep.Rules) != len(Rules()) {
			t.Errorf("report header %+v", rep)
		}
		if !slices.Equal(rep.Redactions, res.Report.Redactions) {
			t.Error("the returned report differs from the written one")
		}
	})

	t.Run("inspect", func(t *testing.T) {
		in, err := Inspect(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if len(in.Problems) != 0 {
			t.Errorf("problems: %v", in.Problems)
		}
		if len(in.Index.Files) != len(res.Index.Files) || in.Report == nil || len(in.Entries) != len(files) {
			t.Errorf("inspected %d files, wrote %d", len(in.Index.Files), len(res.Index.Files))
		}
	})
}

// TestWriteUnredacted: without redaction the values are kept, except a
// Secret's, which are never collected.
func TestWriteUnredacted(t *testing.T) {
	f := newFixture(t)
	var buf bytes.Buffer
	res, err := Write(context.Background(), &buf, f.options(false))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := untar(t, buf.Bytes())
	all := bytes.Join(mapsValues(files), nil)
	for _, s := range []string{"hunter2", "abc123", "Bearer xyz"} {
		if !bytes.Contains(all, []byte(s)) {
			t.Errorf("unredacted bundle lacks %q", s)
		}
	}
	for _, s := range []string{"s3cr3t-value", "c2VjcmV0LXZhbHVl"} {
		if bytes.Contains(all, []byte(s)) {
			t.Errorf("a Secret's value %q is in the bundle", s)
		}
	}
	if res.Index.Redacted || res.Report.Redacted || len(res.Report.Redactions) != 0 || bytes.Contains(all, []byte(Mask)) {
		t.Errorf("unredacted bundle says redacted %v/%v", res.Index.Redacted, res.Report.Redacted)
	}
}

func mapsValues(m map[string][]byte) [][]byte {
	var out [][]byte
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestCreateWithoutCluster: with no cluster, or one that does not answer,
// the host's and tmbox's local parts are written and every cluster
// collector says why it did not run.
func TestCreateWithoutCluster(t *testing.T) {
	tests := []struct {
		name    string
		cluster func(f *fixture) Cluster
		want    string
	}{
		{"no kubeconfig", func(*fixture) Cluster { return Cluster{Err: errors.New("no kubeconfig found")} }, "no kubeconfig found"},
		{"refused", func(f *fixture) Cluster {
			f.client.PrependReactor("*", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
			})
			return Cluster{Client: f.client, Dynamic: f.dyn, State: StateRef{Namespace: "tmbox-system", Name: "tmbox-state", Key: "state.json"}}
		}, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			o := f.options(true)
			o.Cluster = tt.cluster(f)
			var release string
			o.Preflight = func(_ context.Context, r string) (any, error) {
				release = r
				return map[string]bool{"passed": false}, nil
			}
			dir := t.TempDir()
			out := filepath.Join(dir, "b.tar.gz")
			res, err := Create(context.Background(), out, o)
			if err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 || entries[0].Name() != "b.tar.gz" {
				t.Errorf("dir holds %v", entries)
			}
			in, err := InspectFile(out)
			if err != nil {
				t.Fatal(err)
			}
			ix := in.Index
			if ix.Cluster.Reachable || !strings.Contains(ix.Cluster.Error, tt.want) || res.Index.Cluster.Reachable {
				t.Errorf("cluster %+v", ix.Cluster)
			}
			for _, c := range ix.Collectors {
				cluster := strings.HasPrefix(c.Name, "cluster/") || c.Name == "tmbox/state"
				switch {
				case cluster && (c.Status == StatusOK || c.Status == StatusPartial):
					t.Errorf("%s %s without a cluster", c.Name, c.Status)
				case cluster && !strings.Contains(c.Error, tt.want):
					t.Errorf("%s: %q does not say why", c.Name, c.Error)
				case !cluster && c.Status != StatusOK:
					t.Errorf("%s: %s %s", c.Name, c.Status, c.Error)
				}
			}
			paths := map[string]bool{}
			for _, fl := range ix.Files {
				paths[fl.Path] = true
			}
			for _, want := range []string{"host/os-release", "host/meminfo", "host/disk.json", "host/engine-info.txt", "tmbox/version.json", "tmbox/preflight.json", "tmbox/logs/tmbox-20260301-115900.log"} {
				if !paths[want] {
					t.Errorf("no %s", want)
				}
			}
			if release != "" {
				t.Errorf("preflight for release %q without a state", release)
			}
			if f.logCalls != 0 {
				t.Errorf("%d log reads without a cluster", f.logCalls)
			}
		})
	}
}

// TestCreateCancelled: an interrupted run leaves no file, not even a
// partial one.
func TestCreateCancelled(t *testing.T) {
	f := newFixture(t)
	o := f.options(true)
	ctx, cancel := context.WithCancel(context.Background())
	o.Cluster.Logs = LogSourceFunc(func(ctx context.Context, _, _ string, _ *corev1.PodLogOptions) ([]byte, error) {
		cancel()
		<-ctx.Done()
		return nil, ctx.Err()
	})
	dir := t.TempDir()
	_, err := Create(ctx, filepath.Join(dir, "b.tar.gz"), o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want cancelled", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("an interrupted run left %v", entries)
	}
}

// TestTimeouts: a collector that hangs is cut at its timeout and the
// bundle is still written; past the overall timeout the remaining
// collectors are skipped, saying so.
func TestTimeouts(t *testing.T) {
	f := newFixture(t)
	o := f.options(true)
	o.CollectorTimeout = 300 * time.Millisecond
	o.Cluster.Logs = LogSourceFunc(func(ctx context.Context, _, _ string, _ *corev1.PodLogOptions) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	o.Preflight = func(ctx context.Context, _ string) (any, error) { <-ctx.Done(); return nil, ctx.Err() }
	start := time.Now()
	var buf bytes.Buffer
	res, err := Write(context.Background(), &buf, o)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
	for _, name := range []string{"cluster/logs", "tmbox/preflight"} {
		if c := collectorOf(res.Index, name); c.Status != StatusFailed || !strings.Contains(c.Error, "timed out after 300ms") {
			t.Errorf("%s: %+v", name, c)
		}
	}

	o.Timeout = 200 * time.Millisecond
	o.CollectorTimeout = time.Minute
	buf.Reset()
	res, err = Write(context.Background(), &buf, o)
	if err != nil {
		t.Fatal(err)
	}
	if c := collectorOf(res.Index, "tmbox/preflight"); c.Status != StatusSkipped || !strings.Contains(c.Error, "out of time") {
		t.Errorf("preflight after the overall timeout: %+v", c)
	}
	if _, err := Inspect(bytes.NewReader(buf.Bytes())); err != nil {
		t.Errorf("the bundle cut by the timeout does not read: %v", err)
	}
}

// TestSizeCap: files beyond the cap are left out, named in the warnings,
// and the index lists only what is there.
func TestSizeCap(t *testing.T) {
	f := newFixture(t)
	o := f.options(true)
	o.MaxBytes = 2000
	var buf bytes.Buffer
	res, err := Write(context.Background(), &buf, o)
	if err != nil {
		t.Fatal(err)
	}
	in, err := Inspect(bytes.NewReader(buf.Bytes()))
	if err != nil || len(in.Problems) != 0 {
		t.Fatalf("%v %v", err, in.Problems)
	}
	var total int64
	left := false
	for _, fl := range res.Index.Files {
		if fl.Path != ReportFile {
			total += fl.Size
		}
	}
	for _, c := range res.Index.Collectors {
		for _, w := range c.Warnings {
			left = left || strings.Contains(w, "size cap")
		}
	}
	if total > o.MaxBytes || !left {
		t.Errorf("%d bytes for a %d cap, a file left out: %v", total, o.MaxBytes, left)
	}
}

// TestTailLines: the last lines and bytes of a log, cut at a line start.
func TestTailLines(t *testing.T) {
	tests := []struct {
		in         string
		lines, max int64
		want       string
	}{
		{"a\nb\nc\n", 2, 100, "b\nc\n"},
		{"a\nb\nc", 2, 100, "b\nc"},
		{"a\nb\n", 5, 100, "a\nb\n"},
		{"aaaa\nbb\ncc\n", 10, 7, "bb\ncc\n"},
		{"aaaa\nbbb\ncc\n", 10, 6, "cc\n"},
		{"", 3, 10, ""},
	}
	for _, tt := range tests {
		if got := string(tailLines([]byte(tt.in), tt.lines, tt.max)); got != tt.want {
			t.Errorf("tailLines(%q, %d, %d) = %q, want %q", tt.in, tt.lines, tt.max, got, tt.want)
		}
	}
}

// TestInspectRefuses: what is not a bundle, or a bundle whose index lies,
// is reported.
func TestInspectRefuses(t *testing.T) {
	tarGz := func(files map[string]string) []byte {
		var buf bytes.Buffer
		ar := newArchive(&buf, now(), 1<<20)
		for _, name := range slices.Sorted(func(yield func(string) bool) {
			for k := range files {
				if !yield(k) {
					return
				}
			}
		}) {
			if err := ar.add(name, "test", []byte(files[name]), false); err != nil {
				t.Fatal(err)
			}
		}
		if err := ar.close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	index := func(files ...File) string {
		data, _ := json.Marshal(Index{Format: Format, Files: files})
		return string(data)
	}
	tests := []struct {
		name     string
		data     []byte
		err      string
		problems []string
	}{
		{"not gzip", []byte("plain"), "gzip", nil},
		{"no index", tarGz(map[string]string{"a": "x"}), "no index.json", nil},
		{"missing file", tarGz(map[string]string{IndexFile: index(File{Path: "gone", Size: 1})}), "", []string{"gone: listed, not in the archive"}},
		{"size and extra", tarGz(map[string]string{IndexFile: index(File{Path: "a", Size: 5}), "a": "x", "b": "y"}), "", []string{"a: listed with 5 bytes, 1 in the archive", "b: in the archive, not listed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := Inspect(bytes.NewReader(tt.data))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(in.Problems, tt.problems) {
				t.Errorf("problems %q, want %q", in.Problems, tt.problems)
			}
		})
	}
}

// TestArchivePaths: names that would escape the extraction directory are
// refused.
func TestArchivePaths(t *testing.T) {
	for _, name := range []string{"", "/etc/passwd", "../x", "a/../../x", "a//b", ".."} {
		if err := checkPath(name); err == nil {
			t.Errorf("%q accepted", name)
		}
	}
	for _, in := range []string{"..", "a/b", "pod name", ""} {
		if s := safeName(in); strings.ContainsAny(s, "/ ") || s == ".." || s == "" {
			t.Errorf("safeName(%q) = %q", in, s)
		}
	}
}
