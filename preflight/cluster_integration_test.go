package preflight

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-version"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tmbox/tmbox/internal/testcluster"
)

var suite = testcluster.NewSuite(testcluster.Options{})

func TestMain(m *testing.M) { os.Exit(suite.Main(m)) }

// servingObjects decodes Knative Serving 1.21.3's CRDs and core from the
// shared upstream copy.
func servingObjects(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, f := range []string{"1-serving-crds.yaml", "2-serving-core.yaml"} {
		path := filepath.Join("..", "..", "shared", "upstream", "knative", "serving", "1.21.3", f)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("the upstream manifests are needed: %v", err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if len(u.Object) > 0 {
				out = append(out, u)
			}
		}
	}
	return out
}

func target(t *testing.T, cfg *rest.Config, objs []*unstructured.Unstructured) ClusterTarget {
	t.Helper()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cons := version.MustConstraints(version.NewConstraint(">=1.33, <1.35"))
	return ClusterTarget{
		Client: client, Release: "1.21", KubernetesRange: ">=1.33, <=1.34",
		AllowsKubernetes: cons.Check, Objects: objs,
		ManagedLabel: "app.kubernetes.io/managed-by", ManagedValue: "tmbox",
		Products: []Product{{Name: "Knative Serving", ImageContains: "knative.dev/serving/cmd/controller"}},
	}
}

func results(t *testing.T, tgt ClusterTarget) map[string]Result {
	t.Helper()
	rep := Run(context.Background(), ClusterChecks(tgt), Options{})
	out := map[string]Result{}
	for _, r := range rep.Results {
		t.Logf("%-20s %-4s %s", r.Name, r.Status, r.Message)
		out[r.Name] = r
	}
	return out
}

// TestIntegrationClusterChecks runs the cluster checks against the real
// test cluster in the states each check is about.
func TestIntegrationClusterChecks(t *testing.T) {
	c := suite.Cluster(t)
	objs := servingObjects(t)
	admin := kubernetes.NewForConfigOrDie(c.Config)
	ctx := context.Background()

	t.Run("admin passes", func(t *testing.T) {
		res := results(t, target(t, c.Config, objs))
		for name, r := range res {
			if r.Status == StatusFail {
				t.Errorf("%s failed: %s", name, r.Message)
			}
		}
		if !strings.Contains(res[CheckRBAC].Message, "cluster-admin") {
			t.Errorf("rbac: %q", res[CheckRBAC].Message)
		}
		if !strings.Contains(res[CheckCapacity].Message, "pods request") {
			t.Errorf("capacity: %q", res[CheckCapacity].Message)
		}
	})

	t.Run("version outside the range", func(t *testing.T) {
		tgt := target(t, c.Config, objs)
		tgt.KubernetesRange = ">=1.35, <=1.36"
		tgt.AllowsKubernetes = version.MustConstraints(version.NewConstraint(">=1.35, <1.37")).Check
		r := results(t, tgt)[CheckKubernetesVersion]
		if r.Status != StatusFail || !strings.Contains(r.Message, "needs >=1.35, <=1.36") || r.Remediation == "" {
			t.Errorf("got %+v", r)
		}
	})

	t.Run("non-admin lacks permissions", func(t *testing.T) {
		// alice may manage Deployments and nothing else.
		_, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "preflight-test-deployer"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"*"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "preflight-test-deployer"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "preflight-test-deployer"},
			Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "alice"}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = admin.RbacV1().ClusterRoleBindings().Delete(ctx, "preflight-test-deployer", metav1.DeleteOptions{})
			_ = admin.RbacV1().ClusterRoles().Delete(ctx, "preflight-test-deployer", metav1.DeleteOptions{})
		})
		alice, err := c.UserConfig("alice")
		if err != nil {
			t.Fatal(err)
		}
		r := results(t, target(t, alice, objs))[CheckRBAC]
		if r.Status != StatusFail {
			t.Fatalf("rbac: %+v", r)
		}
		for _, want := range []string{"create customresourcedefinitions.apiextensions.k8s.io", "create namespaces", "patch clusterroles.rbac.authorization.k8s.io", "escalate clusterroles.rbac.authorization.k8s.io", "delete configmaps"} {
			if !strings.Contains(r.Message, want) {
				t.Errorf("rbac message lacks %q", want)
			}
		}
		if strings.Contains(r.Message, "deployments.apps") {
			t.Errorf("rbac lists deployments, which alice may manage: %s", r.Message)
		}
	})

	t.Run("foreign install", func(t *testing.T) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "preflight-foreign"}}
		if _, err := admin.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = admin.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{}) })
		labels := map[string]string{"app": "controller"}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "controller", Namespace: ns.Name, Labels: map[string]string{"app.kubernetes.io/version": "1.19.2"}},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "controller", Image: "registry.example/knative.dev/serving/cmd/controller:v1.19.2"}}},
				},
			},
		}
		if _, err := admin.AppsV1().Deployments(ns.Name).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		r := results(t, target(t, c.Config, objs))[CheckForeignInstall]
		if r.Status != StatusFail || !strings.Contains(r.Message, "Knative Serving 1.19.2 (Deployment preflight-foreign/controller") {
			t.Errorf("got %+v", r)
		}
		// The same Deployment labelled as tmbox's is not foreign.
		d.Labels["app.kubernetes.io/managed-by"] = "tmbox"
		if _, err := admin.AppsV1().Deployments(ns.Name).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if r := results(t, target(t, c.Config, objs))[CheckForeignInstall]; r.Status != StatusPass {
			t.Errorf("tmbox's own install reported as foreign: %+v", r)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		cfg := rest.CopyConfig(c.Config)
		cfg.Host = "https://127.0.0.1:1"
		res := results(t, target(t, cfg, objs))
		if r := res[CheckClusterReachable]; r.Status != StatusFail || r.Remediation == "" {
			t.Errorf("reachable: %+v", r)
		}
		for _, name := range []string{CheckRBAC, CheckCapacity, CheckNodesReady} {
			if res[name].Status != StatusSkip {
				t.Errorf("%s: %+v, want skip", name, res[name])
			}
		}
	})
}

// TestIntegrationCapacity checks a cluster whose kwok nodes are too small
// for Knative Serving: the check fails with needed and available numbers.
func TestIntegrationCapacity(t *testing.T) {
	shared := suite.Cluster(t)
	c := testcluster.StartT(t, testcluster.Options{Nodes: 1, NodeCPU: "500m", NodeMemory: "1Gi", BinDir: shared.BinDir, SharedWebhookStandIn: shared.WebhookStandIn})
	objs := servingObjects(t)
	need, err := WorkloadRequests(objs, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Serving 1.21.3 core: %d pods, %s, %s", need.Pods, FormatCPU(need.CPU), FormatBytes(need.Memory))
	r := results(t, target(t, c.Config, objs))[CheckCapacity]
	if r.Status != StatusFail {
		t.Fatalf("capacity on a 0.5-CPU node: %+v", r)
	}
	for _, want := range []string{"CPU: needed " + FormatCPU(need.CPU) + ", available 0.5 CPU", "allocatable 0.5 CPU and 1.0 GiB"} {
		if !strings.Contains(r.Message, want) {
			t.Errorf("message lacks %q", want)
		}
	}
}
