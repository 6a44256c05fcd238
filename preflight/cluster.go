package preflight

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-version"
	"golang.org/x/sync/errgroup"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
)

// Cluster check names (stable API).
const (
	CheckClusterReachable  = "cluster-reachable"
	CheckKubernetesVersion = "kubernetes-version"
	CheckRBAC              = "rbac"
	CheckNodesReady        = "nodes-ready"
	CheckCapacity          = "capacity"
	CheckStorageClass      = "default-storageclass"
	CheckForeignInstall    = "foreign-install"
	CheckDomain            = "knative-domain"
	CheckLoadBalancer      = "load-balancer"
)

// ClusterTarget is what cluster checks look at.
type ClusterTarget struct {
	// Client talks to the cluster.
	Client kubernetes.Interface
	// Release names the release being installed, for messages.
	Release string
	// KubernetesRange describes the release's Kubernetes range for
	// messages (e.g. ">=1.34, <=1.36").
	KubernetesRange string
	// AllowsKubernetes reports whether the release supports a cluster
	// version (the catalog's go-version constraints).
	AllowsKubernetes func(*version.Version) bool
	// Objects are every object the release would apply; RBAC and
	// capacity are computed from them.
	Objects []*unstructured.Unstructured
	// ObjectsErr, when set, says why Objects could not be read; the
	// checks that need them fail with it.
	ObjectsErr error
	// ManagedLabel and ManagedValue mark objects tmbox installed.
	ManagedLabel, ManagedValue string
	// Products identify installs of the release's products by a
	// Deployment's container image, to find ones tmbox did not make.
	Products []Product
	// Domain is the Knative domain the run sets ("": none, so functions
	// are reachable only inside the cluster).
	Domain string
	// GatewayType is the ingress gateway Service's type the run sets
	// ("" is LoadBalancer, the default on an existing cluster).
	GatewayType string
}

// Product identifies an installed product by its controller's image.
type Product struct {
	// Name is the product (e.g. "Knative Serving").
	Name string
	// ImageContains matches a Deployment container image.
	ImageContains string
}

// ClusterChecks returns the checks of the cluster t names, in a stable
// order. When the cluster does not answer, the other checks report skip.
func ClusterChecks(t ClusterTarget) []Check {
	c := &clusterChecks{t: t}
	return []Check{
		New(CheckClusterReachable, CategoryCluster, c.reachable),
		New(CheckKubernetesVersion, CategoryCluster, c.gated(c.version)),
		New(CheckRBAC, CategoryCluster, c.gated(c.rbac)),
		New(CheckNodesReady, CategoryCluster, c.gated(c.nodesReady)),
		New(CheckCapacity, CategoryCluster, c.gated(c.capacity)),
		New(CheckStorageClass, CategoryCluster, c.gated(c.storageClass)),
		New(CheckForeignInstall, CategoryCluster, c.gated(c.foreign)),
		New(CheckDomain, CategoryCluster, c.domain),
		New(CheckLoadBalancer, CategoryCluster, c.gated(c.loadBalancer)),
	}
}

// loadBalancer warns when the gateway is a LoadBalancer Service and
// nothing shows the cluster can give it an address: no LoadBalancer
// Service has one, no node names a cloud provider, no MetalLB.
func (c *clusterChecks) loadBalancer(ctx context.Context) Result {
	if c.t.GatewayType != "" && c.t.GatewayType != "LoadBalancer" {
		return Pass("the gateway is a %s Service: no load balancer needed", c.t.GatewayType)
	}
	svcs, err := c.t.Client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return Warn("", "cannot list Services: %v", err)
	}
	for _, s := range svcs.Items {
		if s.Spec.Type == "LoadBalancer" && len(s.Status.LoadBalancer.Ingress) > 0 {
			return Pass("LoadBalancer Service %s/%s has an address: the cluster allocates load balancers", s.Namespace, s.Name)
		}
	}
	nodes, err := c.t.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, n := range nodes.Items {
			if p, _, ok := strings.Cut(n.Spec.ProviderID, "://"); ok && p != "" && p != "kind" && p != "kwok" {
				return Pass("node %s runs on cloud provider %s, which allocates load balancers", n.Name, p)
			}
		}
	}
	if _, err := c.t.Client.CoreV1().Namespaces().Get(ctx, "metallb-system", metav1.GetOptions{}); err == nil {
		return Pass("MetalLB is installed (namespace metallb-system)")
	}
	return Warn("install a load-balancer implementation (MetalLB, a cloud controller), or use --gateway-type NodePort",
		"nothing shows this cluster allocates load balancers: the ingress gateway's LoadBalancer Service may stay pending, and functions unreachable from outside")
}

// domain warns when functions will get cluster-local URLs only.
func (c *clusterChecks) domain(context.Context) Result {
	if c.t.Domain != "" {
		return Pass("functions are reachable at {name}.{namespace}.%s", c.t.Domain)
	}
	return Warn("set a domain whose wildcard DNS record points at the ingress gateway: --domain apps.example.com (or tmbox configure --domain later)",
		"no domain set: functions get cluster-local URLs ({name}.{namespace}.svc.cluster.local), reachable only inside the cluster")
}

type clusterChecks struct {
	t    ClusterTarget
	once sync.Once
	ver  string
	err  error
}

// probe asks the server's version once for all checks.
func (c *clusterChecks) probe(ctx context.Context) (string, error) {
	c.once.Do(func() {
		type res struct {
			v   string
			err error
		}
		ch := make(chan res, 1)
		go func() {
			info, err := c.t.Client.Discovery().ServerVersion()
			if err != nil {
				ch <- res{err: err}
				return
			}
			ch <- res{v: info.GitVersion}
		}()
		select {
		case r := <-ch:
			c.ver, c.err = r.v, r.err
		case <-ctx.Done():
			c.err = ctx.Err()
		}
	})
	return c.ver, c.err
}

func (c *clusterChecks) reachable(ctx context.Context) Result {
	v, err := c.probe(ctx)
	if err != nil {
		return Fail("check the kubeconfig and context (kubectl --kubeconfig … cluster-info), the network path to the API server and its certificate", "the API server does not answer: %v", err)
	}
	return Pass("the API server answers (Kubernetes %s)", v)
}

// gated runs check only when the cluster answered.
func (c *clusterChecks) gated(check func(context.Context) Result) func(context.Context) Result {
	return func(ctx context.Context) Result {
		if _, err := c.probe(ctx); err != nil {
			return Result{Status: StatusSkip, Message: "skipped: the cluster does not answer"}
		}
		return check(ctx)
	}
}

func (c *clusterChecks) version(context.Context) Result {
	v, err := version.NewVersion(strings.TrimPrefix(c.ver, "v"))
	if err != nil {
		return Fail("", "cannot parse the server version %q: %v", c.ver, err)
	}
	core := v.Core()
	if !c.t.AllowsKubernetes(core) {
		return Fail(fmt.Sprintf("use a cluster whose Kubernetes is %s, or pick a release whose range includes %s (tmbox versions)", c.t.KubernetesRange, core),
			"the cluster runs Kubernetes %s; release %s needs %s", c.ver, c.t.Release, c.t.KubernetesRange)
	}
	return Pass("Kubernetes %s is inside release %s's range %s", c.ver, c.t.Release, c.t.KubernetesRange)
}

// access is one permission the install needs.
type access struct {
	group, resource string
	namespaced      bool
	verb            string
}

func (a access) String() string {
	r := a.resource
	if a.group != "" {
		r += "." + a.group
	}
	return a.verb + " " + r
}

// installVerbs are what tmbox does to each kind it installs: server-side
// apply (get, create, patch), readiness watches (list, watch) and pruning
// (delete).
func installVerbs() []string { return []string{"get", "list", "watch", "create", "patch", "delete"} }

func (c *clusterChecks) rbac(ctx context.Context) Result {
	if c.t.ObjectsErr != nil {
		return Fail("make the release's manifests readable (--mirror, --bundle, or network access to the pinned URLs)", "cannot read release %s's manifests to know which permissions it needs: %v", c.t.Release, c.t.ObjectsErr)
	}
	client := c.t.Client.AuthorizationV1().SelfSubjectAccessReviews()
	allowed := func(ctx context.Context, a access) (bool, error) {
		r, err := client.Create(ctx, &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: a.verb, Group: a.group, Resource: a.resource},
		}}, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		return r.Status.Allowed, nil
	}
	// One question settles it for cluster admins.
	if ok, err := allowed(ctx, access{group: "*", resource: "*", verb: "*"}); err != nil {
		return Fail("the identity must be allowed to create selfsubjectaccessreviews (every authenticated user is, by default)", "cannot ask the API server about permissions: %v", err)
	} else if ok {
		return Pass("the identity may do everything (cluster-admin)")
	}
	resources, unknown, err := c.resourcesOf()
	if err != nil {
		return Fail("", "discovery: %v", err)
	}
	var needed []access
	for _, r := range resources {
		for _, v := range installVerbs() {
			needed = append(needed, access{group: r.Group, resource: r.Resource, verb: v})
		}
	}
	// Creating roles that grant more than the identity holds needs
	// escalate and bind.
	for _, r := range resources {
		if r.Group == "rbac.authorization.k8s.io" && (r.Resource == "clusterroles" || r.Resource == "roles") {
			needed = append(needed, access{group: r.Group, resource: r.Resource, verb: "escalate"}, access{group: r.Group, resource: r.Resource, verb: "bind"})
		}
	}
	missing := make([]bool, len(needed))
	errs := make([]error, len(needed))
	var g errgroup.Group
	g.SetLimit(16)
	for i, a := range needed {
		g.Go(func() error {
			ok, err := allowed(ctx, a)
			missing[i], errs[i] = !ok, err
			return nil // kept per access, reported below
		})
	}
	_ = g.Wait()
	var lacks []string
	for i, a := range needed {
		if errs[i] != nil {
			return Fail("", "asking about %s: %v", a, errs[i])
		}
		if missing[i] {
			lacks = append(lacks, a.String())
		}
	}
	if len(unknown) > 0 {
		return Fail("install the API that serves them, or report a catalog error", "the cluster serves no resource for %s, and the release brings no CRD for them", strings.Join(unknown, ", "))
	}
	if len(lacks) > 0 {
		return Fail("run as cluster-admin, or bind the identity to a ClusterRole granting the missing permissions",
			"the identity lacks %d of %d permissions the install needs: %s", len(lacks), len(needed), strings.Join(lacks, ", "))
	}
	return Pass("the identity holds all %d permissions the install needs on %d resources", len(needed), len(resources))
}

// resourcesOf maps the objects' kinds to resources: CRDs in the release
// name their own, the cluster's discovery the rest. tmbox's own state
// (a ConfigMap in its namespace) is always included.
func (c *clusterChecks) resourcesOf() ([]schema.GroupResource, []string, error) {
	kinds := map[schema.GroupKind]bool{{Kind: "Namespace"}: true, {Kind: "ConfigMap"}: true}
	fromCRD := map[schema.GroupKind]string{}
	for _, o := range c.t.Objects {
		gvk := o.GroupVersionKind()
		kinds[gvk.GroupKind()] = true
		if gvk.Kind == "CustomResourceDefinition" {
			group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
			plural, _, _ := unstructured.NestedString(o.Object, "spec", "names", "plural")
			fromCRD[schema.GroupKind{Group: group, Kind: kind}] = plural
		}
	}
	_, lists, err := c.t.Client.Discovery().ServerGroupsAndResources()
	if err != nil && len(lists) == 0 {
		return nil, nil, err
	}
	served := map[schema.GroupKind]string{}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") {
				continue
			}
			served[schema.GroupKind{Group: gv.Group, Kind: r.Kind}] = r.Name
		}
	}
	seen := map[schema.GroupResource]bool{}
	var out []schema.GroupResource
	var unknown []string
	for gk := range kinds {
		plural, ok := fromCRD[gk]
		if !ok {
			plural, ok = served[gk]
		}
		if !ok {
			unknown = append(unknown, gk.String())
			continue
		}
		gr := schema.GroupResource{Group: gk.Group, Resource: plural}
		if !seen[gr] {
			seen[gr] = true
			out = append(out, gr)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	sort.Strings(unknown)
	return out, unknown, nil
}

func (c *clusterChecks) nodesReady(ctx context.Context) Result {
	nodes, err := c.t.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return Fail("", "listing nodes: %v", err)
	}
	var notReady []string
	ready := 0
	for _, n := range nodes.Items {
		if nodeReady(&n) {
			ready++
		} else {
			notReady = append(notReady, n.Name)
		}
	}
	switch {
	case len(nodes.Items) == 0:
		return Fail("add nodes to the cluster", "the cluster has no nodes")
	case ready == 0:
		return Fail("kubectl describe node "+notReady[0], "no node is Ready (%s)", strings.Join(notReady, ", "))
	case len(notReady) > 0:
		return Warn("kubectl describe node "+notReady[0], "%d of %d nodes are Ready; not Ready: %s", ready, len(nodes.Items), strings.Join(notReady, ", "))
	}
	return Pass("%d nodes Ready", ready)
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// schedulable reports whether the install's pods can land on n.
func schedulable(n *corev1.Node) bool {
	if n.Spec.Unschedulable || !nodeReady(n) {
		return false
	}
	for _, t := range n.Spec.Taints {
		// The node controller removes not-ready from a Ready node once it
		// notices; it is no reason to count the node out.
		if t.Key == corev1.TaintNodeNotReady {
			continue
		}
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return false
		}
	}
	return true
}

// Requests is the CPU and memory a set of pods requests.
type Requests struct {
	// CPU in millicores and Memory in bytes.
	CPU, Memory int64
	// Pods counts the pods.
	Pods int
	// LargestCPU and LargestMemory are the largest single pod's requests.
	LargestCPU, LargestMemory int64
}

func (r *Requests) add(cpu, mem int64, n int) {
	r.CPU += cpu * int64(n)
	r.Memory += mem * int64(n)
	r.Pods += n
	if n > 0 {
		r.LargestCPU = max(r.LargestCPU, cpu)
		r.LargestMemory = max(r.LargestMemory, mem)
	}
}

// WorkloadRequests sums the requests of the pods the objects' workloads
// run: Deployments, StatefulSets and ReplicaSets times their replicas
// (default 1), DaemonSets once per node. A pod requests the larger of its
// containers' sum and its largest init container, plus its overhead.
func WorkloadRequests(objs []*unstructured.Unstructured, nodes int) (Requests, error) {
	var r Requests
	for _, o := range objs {
		var replicas int
		switch o.GetKind() {
		case "Deployment", "StatefulSet", "ReplicaSet":
			replicas = 1
			spec, _ := o.Object["spec"].(map[string]any)
			switch n := spec["replicas"].(type) {
			case int64:
				replicas = int(n)
			case float64: // decoded from JSON into a plain map
				replicas = int(n)
			case int:
				replicas = n
			}
		case "DaemonSet":
			replicas = nodes
		default:
			continue
		}
		raw, found, _ := unstructured.NestedMap(o.Object, "spec", "template", "spec")
		if !found {
			continue
		}
		var spec corev1.PodSpec
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &spec); err != nil {
			return r, fmt.Errorf("%s %s/%s: pod template: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
		cpu, mem := podRequests(&spec)
		r.add(cpu, mem, replicas)
	}
	return r, nil
}

func podRequests(spec *corev1.PodSpec) (cpu, mem int64) {
	for _, c := range spec.Containers {
		cpu += c.Resources.Requests.Cpu().MilliValue()
		mem += c.Resources.Requests.Memory().Value()
	}
	for _, c := range spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			// A sidecar runs beside the containers.
			cpu += c.Resources.Requests.Cpu().MilliValue()
			mem += c.Resources.Requests.Memory().Value()
			continue
		}
		cpu = max(cpu, c.Resources.Requests.Cpu().MilliValue())
		mem = max(mem, c.Resources.Requests.Memory().Value())
	}
	if spec.Overhead != nil {
		cpu += spec.Overhead.Cpu().MilliValue()
		mem += spec.Overhead.Memory().Value()
	}
	return cpu, mem
}

// FormatCPU prints millicores as CPUs ("2.35 CPU").
func FormatCPU(m int64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", float64(m)/1000), "0"), ".") + " CPU"
}

// FormatBytes prints bytes in binary units ("4.1 GiB").
func FormatBytes(b int64) string {
	q := resource.NewQuantity(b, resource.BinarySI)
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
	}
	return q.String()
}

func (c *clusterChecks) capacity(ctx context.Context) Result {
	if c.t.ObjectsErr != nil {
		return Fail("make the release's manifests readable (--mirror, --bundle, or network access to the pinned URLs)", "cannot read release %s's manifests to sum their requests: %v", c.t.Release, c.t.ObjectsErr)
	}
	nodes, err := c.t.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return Fail("", "listing nodes: %v", err)
	}
	pods, err := c.t.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "status.phase!=Succeeded,status.phase!=Failed"})
	if err != nil {
		return Fail("", "listing pods: %v", err)
	}
	// Pods in the release's namespaces are replaced by the install; the
	// rest keep what they requested.
	ours := map[string]bool{}
	for _, o := range c.t.Objects {
		if o.GetKind() == "Namespace" {
			ours[o.GetName()] = true
		} else if ns := o.GetNamespace(); ns != "" {
			ours[ns] = true
		}
	}
	usedOn := map[string][2]int64{}
	for _, p := range pods.Items {
		if ours[p.Namespace] || p.Spec.NodeName == "" {
			continue
		}
		cpu, mem := podRequests(&p.Spec)
		u := usedOn[p.Spec.NodeName]
		usedOn[p.Spec.NodeName] = [2]int64{u[0] + cpu, u[1] + mem}
	}
	var allocCPU, allocMem, usedCPU, usedMem, bestCPU, bestMem int64
	count := 0
	for _, n := range nodes.Items {
		if !schedulable(&n) {
			continue
		}
		count++
		cpu, mem := n.Status.Allocatable.Cpu().MilliValue(), n.Status.Allocatable.Memory().Value()
		u := usedOn[n.Name]
		allocCPU, allocMem, usedCPU, usedMem = allocCPU+cpu, allocMem+mem, usedCPU+u[0], usedMem+u[1]
		bestCPU, bestMem = max(bestCPU, cpu-u[0]), max(bestMem, mem-u[1])
	}
	need, err := WorkloadRequests(c.t.Objects, count)
	if err != nil {
		return Fail("report this as a tmbox bug", "%v", err)
	}
	freeCPU, freeMem := allocCPU-usedCPU, allocMem-usedMem
	offer := fmt.Sprintf("%d schedulable Ready node(s) offer %s and %s free (allocatable %s and %s, minus %s and %s requested by other pods)",
		count, FormatCPU(freeCPU), FormatBytes(freeMem), FormatCPU(allocCPU), FormatBytes(allocMem), FormatCPU(usedCPU), FormatBytes(usedMem))
	needs := fmt.Sprintf("release %s's %d pods request %s and %s", c.t.Release, need.Pods, FormatCPU(need.CPU), FormatBytes(need.Memory))
	var short []string
	if need.CPU > freeCPU {
		short = append(short, fmt.Sprintf("CPU: needed %s, available %s", FormatCPU(need.CPU), FormatCPU(freeCPU)))
	}
	if need.Memory > freeMem {
		short = append(short, fmt.Sprintf("memory: needed %s, available %s", FormatBytes(need.Memory), FormatBytes(freeMem)))
	}
	if need.LargestCPU > bestCPU || need.LargestMemory > bestMem {
		short = append(short, fmt.Sprintf("the largest pod requests %s and %s; the roomiest node has %s and %s free",
			FormatCPU(need.LargestCPU), FormatBytes(need.LargestMemory), FormatCPU(bestCPU), FormatBytes(bestMem)))
	}
	if len(short) > 0 {
		return Fail("add nodes or larger nodes, or free capacity, then re-run", "not enough capacity: %s (%s; %s)", strings.Join(short, "; "), needs, offer)
	}
	return Pass("%s; %s", needs, offer)
}

func (c *clusterChecks) storageClass(ctx context.Context) Result {
	list, err := c.t.Client.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return Warn("", "cannot list StorageClasses: %v", err)
	}
	for _, sc := range list.Items {
		if sc.Annotations["storageclass.kubernetes.io/is-default-class"] == "true" {
			return Pass("default StorageClass %s", sc.Name)
		}
	}
	return Warn("mark one StorageClass default (kubectl annotate storageclass NAME storageclass.kubernetes.io/is-default-class=true) if your workloads use PersistentVolumeClaims",
		"no default StorageClass: tmbox does not need one, but PersistentVolumeClaims without a class will stay Pending")
}

func (c *clusterChecks) foreign(ctx context.Context) Result {
	deps, err := c.t.Client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return Fail("", "listing Deployments: %v", err)
	}
	var found []string
	for _, d := range deps.Items {
		if d.Labels[c.t.ManagedLabel] == c.t.ManagedValue {
			continue
		}
		for _, ctr := range d.Spec.Template.Spec.Containers {
			i := slices.IndexFunc(c.t.Products, func(p Product) bool { return strings.Contains(ctr.Image, p.ImageContains) })
			if i < 0 {
				continue
			}
			found = append(found, fmt.Sprintf("%s %s (Deployment %s/%s, image %s)", c.t.Products[i].Name, versionOf(d.Labels, ctr.Image), d.Namespace, d.Name, ctr.Image))
			break
		}
	}
	if len(found) > 0 {
		return Fail("uninstall it first (with the tool that installed it), or install into another cluster; tmbox does not take over installs it did not make",
			"found installs tmbox did not make: %s", strings.Join(found, "; "))
	}
	return Pass("no Istio, Knative or TriggerMesh installed by other means")
}

// versionOf reads a product version from well-known labels, else the
// image tag.
func versionOf(labels map[string]string, image string) string {
	for _, k := range []string{"app.kubernetes.io/version", "serving.knative.dev/release", "eventing.knative.dev/release", "operator.istio.io/version"} {
		if v := labels[k]; v != "" {
			return v
		}
	}
	ref := image
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[i+1:]
	}
	return "(version unknown)"
}
