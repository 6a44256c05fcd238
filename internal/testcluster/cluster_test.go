package testcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

var suite = NewSuite(Options{Nodes: 2})

func TestMain(m *testing.M) { os.Exit(suite.Main(m)) }

// upstream is ../shared/upstream beside the repository.
func upstream(t *testing.T, parts ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{"..", "..", "..", "shared", "upstream"}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("upstream manifests not found (the repo expects ../shared beside it): %v", err)
	}
	return p
}

func TestIntegrationServerVersion(t *testing.T) {
	c := suite.Cluster(t)
	v, err := c.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "v1.34.") {
		t.Errorf("discovery reports %q, want v1.34.x", v)
	}
}

func TestIntegrationCRDAndDeployment(t *testing.T) {
	c := suite.Cluster(t)
	ctx := context.Background()
	const manager = "tmbox-test"
	force := metav1.ApplyOptions{FieldManager: manager, Force: true}

	crd := map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": "widgets.example.tmbox.dev"},
		"spec": map[string]any{
			"group": "example.tmbox.dev",
			"names": map[string]any{"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
			"scope": "Namespaced",
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object",
					"properties": map[string]any{"spec": map[string]any{
						"type":       "object",
						"properties": map[string]any{"size": map[string]any{"type": "integer"}},
					}},
				}},
			}},
		},
	}
	dyn := dynamic.NewForConfigOrDie(c.Config)
	crdGVR := apiextensionsv1.SchemeGroupVersion.WithResource("customresourcedefinitions")
	if _, err := dyn.Resource(crdGVR).Apply(ctx, "widgets.example.tmbox.dev", &unstructured.Unstructured{Object: crd}, force); err != nil {
		t.Fatalf("apply CRD: %v", err)
	}
	ext := apiextensionsclient.NewForConfigOrDie(c.Config)
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "widgets.example.tmbox.dev", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range got.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatalf("CRD never Established: %v", err)
	}

	widget := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.tmbox.dev/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w1", "namespace": "default"},
		"spec":     map[string]any{"size": int64(3)},
	}}
	widgets := dyn.Resource(schema.GroupVersionResource{Group: "example.tmbox.dev", Version: "v1", Resource: "widgets"}).Namespace("default")
	if _, err := widgets.Apply(ctx, "w1", widget, force); err != nil {
		t.Fatalf("apply custom resource: %v", err)
	}
	// Schema validation is real: a string where the schema says integer is refused.
	bad := widget.DeepCopy()
	_ = unstructured.SetNestedField(bad.Object, "three", "spec", "size")
	if _, err := widgets.Apply(ctx, "w1", bad, force); err == nil || !strings.Contains(err.Error(), ".spec.size") {
		t.Errorf("want the schema violation at .spec.size refused, got %v", err)
	}

	dep := map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "default"},
		"spec": map[string]any{
			"replicas": int64(3),
			"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": "web"}},
				"spec": map[string]any{"containers": []any{map[string]any{
					"name": "web", "image": "registry.example/web:1",
					"resources": map[string]any{"requests": map[string]any{"cpu": "100m", "memory": "64Mi"}},
				}}},
			},
		},
	}
	depGVR := appsv1.SchemeGroupVersion.WithResource("deployments")
	if _, err := dyn.Resource(depGVR).Namespace("default").Apply(ctx, "web", &unstructured.Unstructured{Object: dep}, force); err != nil {
		t.Fatalf("apply Deployment: %v", err)
	}
	cs := kubernetes.NewForConfigOrDie(c.Config)
	if err := waitDeploymentsAvailable(ctx, cs, "default", nil); err != nil {
		t.Fatal(err)
	}
	pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]bool{}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning {
			t.Errorf("pod %s is %s, want Running", p.Name, p.Status.Phase)
		}
		nodes[p.Spec.NodeName] = true
	}
	if len(pods.Items) != 3 || len(nodes) == 0 {
		t.Errorf("want 3 scheduled pods, got %d on nodes %v", len(pods.Items), nodes)
	}
}

func TestIntegrationJobCompletes(t *testing.T) {
	c := suite.Cluster(t)
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(c.Config)
	job := map[string]any{
		"apiVersion": "batch/v1", "kind": "Job",
		"metadata": map[string]any{"generateName": "once-", "namespace": "default"},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"restartPolicy": "Never",
			"containers":    []any{map[string]any{"name": "job", "image": "registry.example/job:1"}},
		}}},
	}
	dyn := dynamic.NewForConfigOrDie(c.Config)
	created, err := dyn.Resource(schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}).Namespace("default").
		Create(ctx, &unstructured.Unstructured{Object: job}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		j, err := cs.BatchV1().Jobs("default").Get(ctx, created.GetName(), metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return j.Status.Succeeded == 1, nil
	})
	if err != nil {
		t.Fatalf("Job %s never completed: %v", created.GetName(), err)
	}
}

func TestIntegrationNonAdminRefused(t *testing.T) {
	c := suite.Cluster(t)
	ctx := context.Background()
	cfg, err := c.UserConfig("alice", "developers")
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "alice-wants-this"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}},
	}
	_, err = cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("non-admin creating a ClusterRole: want Forbidden, got %v", err)
	}
	// The admin can, so the refusal is RBAC and not a broken request.
	admin := kubernetes.NewForConfigOrDie(c.Config)
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("admin creating the same ClusterRole: %v", err)
	}
	// And a binding gives alice exactly what it grants: reading pods, not
	// listing secrets.
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "alice-reads-pods"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "User", Name: "alice", APIGroup: "rbac.authorization.k8s.io"}},
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().Pods("default").Get(ctx, "does-not-exist", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}); err != nil {
		t.Errorf("alice still cannot get pods after the binding: %v", err)
	}
	if _, err := cs.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("alice listing secrets: want Forbidden, got %v", err)
	}
}

// TestIntegrationNetworkIsolation shows what a webhook call does in the
// loopback-only namespace: with the stand-in off it fails at once with
// "network is unreachable"; with it on it is admitted and recorded.
func TestIntegrationNetworkIsolation(t *testing.T) {
	c := suite.Cluster(t)
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(c.Config)
	const ns = "isolation"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "guard", Namespace: ns},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 443}}, Selector: map[string]string{"app": "guard"}},
	}
	svc, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	hook := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "guard"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "guard.isolation.tmbox.dev",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				Service: &admissionregistrationv1.ServiceReference{Namespace: ns, Name: "guard", Path: ptr.To("/validate"), Port: ptr.To[int32](443)},
			},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
			}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](10),
		}},
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, hook, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), "guard", metav1.DeleteOptions{})
		_ = c.WebhookStandIn.Enable()
	})
	create := func(name string) (time.Duration, error) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
		start := time.Now()
		_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		return time.Since(start), err
	}

	if err := c.WebhookStandIn.Disable(); err != nil {
		t.Fatal(err)
	}
	// The webhook configuration takes effect asynchronously; retry until
	// the apiserver calls it.
	var took time.Duration
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		took, err = create(fmt.Sprintf("off-%d", time.Now().UnixNano()))
		return err != nil, nil
	})
	if err != nil {
		t.Fatalf("with the stand-in off, creating a ConfigMap never hit the failing webhook")
	}
	_, err = create("off-final")
	if err == nil || !strings.Contains(err.Error(), "network is unreachable") {
		t.Fatalf("with the stand-in off: want a network-unreachable webhook failure, got %v", err)
	}
	if !strings.Contains(err.Error(), svc.Spec.ClusterIP) {
		t.Errorf("the failure should name the Service IP %s: %v", svc.Spec.ClusterIP, err)
	}
	if took > 5*time.Second {
		t.Errorf("the webhook failure took %s: it must fail fast, not time out", took)
	}

	if err := c.WebhookStandIn.Enable(); err != nil {
		t.Fatal(err)
	}
	before := len(c.WebhookStandIn.Reviews())
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		_, err := create(fmt.Sprintf("on-%d", time.Now().UnixNano()))
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("with the stand-in on, the ConfigMap was never admitted")
	}
	var seen bool
	for _, r := range c.WebhookStandIn.Reviews()[before:] {
		if r.Type == "admission" && r.ServerName == "guard.isolation.svc" && r.Path == "/validate" &&
			r.Operation == "CREATE" && r.Resource == "configmaps" && r.Namespace == ns {
			seen = true
		}
	}
	if !seen {
		t.Errorf("the stand-in did not record the ConfigMap CREATE: %+v", c.WebhookStandIn.Reviews())
	}
}

// TestIntegrationKnativeServingReapplyAndUpgrade applies the real Serving
// 1.21.3 release twice, then 1.22.1 over it, the way a user would with
// kubectl, and checks every Deployment ends Available at 1.22.1's images.
// The second apply and the upgrade go through Serving's own admission
// webhooks, answered by the stand-in.
func TestIntegrationKnativeServingReapplyAndUpgrade(t *testing.T) {
	c := suite.Cluster(t)
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(c.Config)
	before := len(c.WebhookStandIn.Reviews())
	for i, version := range []string{"1.21.3", "1.21.3", "1.22.1"} {
		dir := upstream(t, "knative", "serving", version)
		t.Logf("apply %d: serving %s", i+1, version)
		kubectl(t, c, "apply", "--server-side", "--force-conflicts", "--field-manager=tmbox-test", "-f", filepath.Join(dir, "1-serving-crds.yaml"))
		kubectl(t, c, "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "knative.dev/crd-install=true")
		for _, f := range []string{"2-serving-core.yaml", "3-serving-hpa.yaml"} {
			kubectl(t, c, "apply", "--server-side", "--force-conflicts", "--field-manager=tmbox-test", "-f", filepath.Join(dir, f))
		}
		kubectl(t, c, "create", "-f", filepath.Join(dir, "4-serving-post-install-jobs.yaml"))
		if err := waitDeploymentsAvailable(ctx, cs, "knative-serving", deploymentImages(t, filepath.Join(dir, "2-serving-core.yaml"), filepath.Join(dir, "3-serving-hpa.yaml"))); err != nil {
			t.Fatalf("after apply %d (serving %s): %v", i+1, version, err)
		}
	}
	var serving int
	for _, r := range c.WebhookStandIn.Reviews()[before:] {
		if r.Type == "admission" && strings.HasSuffix(r.ServerName, ".knative-serving.svc") {
			serving++
		}
	}
	if serving == 0 {
		t.Errorf("re-apply and upgrade never went through Serving's admission webhooks")
	}
}

func kubectl(t *testing.T, c *Cluster, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(c.BinDir, "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// deploymentImages reads the Deployments in the given manifest files and
// returns each one's container images by name.
func deploymentImages(t *testing.T, files ...string) map[string][]string {
	t.Helper()
	want := map[string][]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(data), "\n---") {
			var d appsv1.Deployment
			if err := yaml.Unmarshal([]byte(doc), &d); err != nil || d.Kind != "Deployment" {
				continue
			}
			want[d.Name] = podImages(d.Spec.Template.Spec)
		}
	}
	if len(want) == 0 {
		t.Fatalf("no Deployments in %v", files)
	}
	return want
}

func podImages(spec corev1.PodSpec) []string {
	var images []string
	for _, c := range spec.Containers {
		images = append(images, c.Image)
	}
	sort.Strings(images)
	return images
}

// waitDeploymentsAvailable waits until every Deployment in ns is rolled out
// and Available, and, when want is set, exactly want's Deployments exist
// with want's images.
func waitDeploymentsAvailable(ctx context.Context, cs kubernetes.Interface, ns string, want map[string][]string) error {
	var problems []string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		problems = problems[:0]
		found := map[string]bool{}
		for _, d := range list.Items {
			found[d.Name] = true
			if want != nil {
				got := podImages(d.Spec.Template.Spec)
				if fmt.Sprint(got) != fmt.Sprint(want[d.Name]) {
					problems = append(problems, fmt.Sprintf("%s runs %v, want %v", d.Name, got, want[d.Name]))
				}
			}
			if !deploymentDone(&d) {
				problems = append(problems, fmt.Sprintf("%s not rolled out (updated %d, available %d of %d)", d.Name, d.Status.UpdatedReplicas, d.Status.AvailableReplicas, ptr.Deref(d.Spec.Replicas, 1)))
			}
		}
		for name := range want {
			if !found[name] {
				problems = append(problems, name+" missing")
			}
		}
		if len(list.Items) == 0 {
			problems = append(problems, "no Deployments")
		}
		return len(problems) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("deployments in %s: %v: %s", ns, err, strings.Join(problems, "; "))
	}
	return nil
}

func deploymentDone(d *appsv1.Deployment) bool {
	replicas := ptr.Deref(d.Spec.Replicas, 1)
	if d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas != replicas ||
		d.Status.AvailableReplicas != replicas || d.Status.Replicas != replicas {
		return false
	}
	for _, cond := range d.Status.Conditions {
		if cond.Type == appsv1.DeploymentAvailable {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// TestIntegrationStopLeavesNothing starts a cluster of its own, stops it
// and checks that every process it started is gone.
func TestIntegrationStopLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs the test cluster (skipped with -short)")
	}
	c, err := Start(context.Background(), Options{DisableWebhookStandIn: true, BinDir: suite.Cluster(t).BinDir})
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, p := range c.procs {
		pids = append(pids, p.cmd.Process.Pid)
	}
	if len(pids) != 5 {
		t.Errorf("want 5 processes (etcd, apiserver, controller-manager, scheduler, kwok), got %d", len(pids))
	}
	if left := ProcessesUnder(c.Dir); len(left) != len(pids) {
		t.Errorf("ProcessesUnder sees %d processes, want %d: %v", len(left), len(pids), left)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after Stop (kill 0: %v)", pid, err)
		}
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("temp dir %s not removed: %v", c.Dir, err)
	}
}
