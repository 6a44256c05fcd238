package support

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
)

// Labels tmbox puts on what it manages (installer/apply's).
const (
	managedByLabel = "app.kubernetes.io/managed-by"
	managedByValue = "tmbox"
)

// parallel is how many API requests a collector has in flight.
const parallel = 8

// logFetchTimeout bounds one container log read.
const logFetchTimeout = 15 * time.Second

// apiLogs reads container logs from the API server.
type apiLogs struct{ client kubernetes.Interface }

// Logs implements LogSource.
func (a apiLogs) Logs(ctx context.Context, namespace, pod string, opts *corev1.PodLogOptions) ([]byte, error) {
	return a.client.CoreV1().Pods(namespace).GetLogs(pod, opts).DoRaw(ctx)
}

// clusterVersion writes cluster/version.json; its failure means the
// cluster cannot be reached, and the other cluster collectors are skipped.
func (r *run) clusterVersion(ctx context.Context, s *sink) error {
	if err := r.o.Cluster.Err; err != nil {
		return skip("%v", err)
	}
	v, err := bounded(ctx, r.o.Cluster.Client.Discovery().ServerVersion)
	if err != nil {
		return fmt.Errorf("server version: %w", err)
	}
	return s.json("cluster/version.json", v)
}

// nodeSummary is what cluster/nodes.yaml says about a node.
type nodeSummary struct {
	Name          string                 `json:"name"`
	Labels        map[string]string      `json:"labels,omitempty"`
	Unschedulable bool                   `json:"unschedulable,omitempty"`
	Taints        []corev1.Taint         `json:"taints,omitempty"`
	Conditions    []corev1.NodeCondition `json:"conditions,omitempty"`
	Capacity      corev1.ResourceList    `json:"capacity,omitempty"`
	Allocatable   corev1.ResourceList    `json:"allocatable,omitempty"`
	NodeInfo      corev1.NodeSystemInfo  `json:"nodeInfo"`
	Addresses     []corev1.NodeAddress   `json:"addresses,omitempty"`
	Created       metav1.Time            `json:"created"`
}

// clusterNodes writes cluster/nodes.yaml.
func (r *run) clusterNodes(ctx context.Context, s *sink) error {
	nodes, err := r.o.Cluster.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	out := make([]nodeSummary, 0, len(nodes.Items))
	for _, n := range nodes.Items {
		out = append(out, nodeSummary{
			Name: n.Name, Labels: n.Labels, Unschedulable: n.Spec.Unschedulable, Taints: n.Spec.Taints,
			Conditions: n.Status.Conditions, Capacity: n.Status.Capacity, Allocatable: n.Status.Allocatable,
			NodeInfo: n.Status.NodeInfo, Addresses: n.Status.Addresses, Created: n.CreationTimestamp,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return s.yaml("cluster/nodes.yaml", map[string]any{"nodes": out})
}

// listable is one resource the managed objects are listed from.
type listable struct {
	gvr        schema.GroupVersionResource
	kind       string
	namespaced bool
}

// clusterManaged lists every object labelled managed-by=tmbox in every
// listable resource and writes one cluster/managed/<resource>.yaml per
// resource; Secrets as names, types and keys only. It adds the objects'
// namespaces to the release namespaces.
func (r *run) clusterManaged(ctx context.Context, s *sink) error {
	start := time.Now()
	resources, err := bounded(ctx, func() ([]*metav1.APIResourceList, error) {
		return discovery.ServerPreferredResources(r.o.Cluster.Client.Discovery())
	})
	r.o.Logger.Debug("support: discovery", "groupVersions", len(resources), "took", time.Since(start), "err", err)
	if err != nil {
		if !discovery.IsGroupDiscoveryFailedError(err) || len(resources) == 0 {
			return fmt.Errorf("discovery: %w", err)
		}
		s.warn("discovery: %v (those groups are left out)", err)
	}
	var todo []listable
	for _, list := range resources {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			continue
		}
		for _, res := range list.APIResources {
			if strings.Contains(res.Name, "/") || !slices.Contains(res.Verbs, "list") {
				continue
			}
			if res.Name == "events" || (gv.Group == "" && res.Name == "componentstatuses") {
				continue
			}
			todo = append(todo, listable{gvr: gv.WithResource(res.Name), kind: res.Kind, namespaced: res.Namespaced})
		}
	}
	sel := metav1.ListOptions{LabelSelector: managedByLabel + "=" + managedByValue}
	type listed struct {
		l     listable
		items []unstructured.Unstructured
	}
	results := make([]listed, len(todo))
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for i, l := range todo {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			list, err := r.o.Cluster.Dynamic.Resource(l.gvr).List(ctx, sel)
			if err != nil {
				s.warn("list %s: %v", resourceName(l.gvr), err)
				return
			}
			results[i] = listed{l, list.Items}
		})
	}
	wg.Wait()
	r.o.Logger.Debug("support: listed managed objects", "resources", len(todo), "took", time.Since(start))
	if err := ctx.Err(); err != nil {
		return err
	}
	total := 0
	for _, res := range results {
		if len(res.items) == 0 {
			continue
		}
		items := make([]any, 0, len(res.items))
		sort.Slice(res.items, func(i, j int) bool {
			a, b := res.items[i], res.items[j]
			if a.GetNamespace() != b.GetNamespace() {
				return a.GetNamespace() < b.GetNamespace()
			}
			return a.GetName() < b.GetName()
		})
		for _, u := range res.items {
			if ns := u.GetNamespace(); ns != "" {
				if _, ok := r.namespaces[ns]; !ok {
					r.namespaces[ns] = "holds objects tmbox manages"
				}
			}
			if res.l.gvr.Group == "" && res.l.kind == "Namespace" {
				if _, ok := r.namespaces[u.GetName()]; !ok {
					r.namespaces[u.GetName()] = "a namespace tmbox manages"
				}
			}
			switch {
			case res.l.gvr.Group == "" && res.l.kind == "Secret":
				items = append(items, secretKeysOnly(&u))
			case res.l.gvr.Group == "apiextensions.k8s.io" && res.l.kind == "CustomResourceDefinition":
				items = append(items, withoutSchemas(trim(&u)).Object)
			default:
				items = append(items, trim(&u).Object)
			}
		}
		total += len(items)
		if err := s.list("cluster/managed/"+resourceName(res.l.gvr)+".yaml", items); err != nil {
			return err
		}
	}
	s.note("%d objects in %d resources", total, s.c.Files)
	return s.json("cluster/namespaces.json", r.namespaces)
}

// resourceName is "deployments.apps" ("secrets" for the core group).
func resourceName(gvr schema.GroupVersionResource) string {
	if gvr.Group == "" {
		return gvr.Resource
	}
	return gvr.Resource + "." + gvr.Group
}

// secretKeysOnly is a Secret as its name, namespace, type and data keys:
// never its values, labels or annotations (kubectl's last-applied
// annotation would hold the values).
func secretKeysOnly(u *unstructured.Unstructured) map[string]any {
	keys := map[string]bool{}
	for _, field := range []string{"data", "stringData"} {
		m, _, _ := unstructured.NestedMap(u.Object, field)
		for k := range m {
			keys[k] = true
		}
	}
	typ, _, _ := unstructured.NestedString(u.Object, "type")
	return map[string]any{
		"apiVersion": "v1",
		"kind":       "Secret",
		"metadata":   map[string]any{"name": u.GetName(), "namespace": u.GetNamespace()},
		"type":       typ,
		"keys":       slices.Sorted(maps.Keys(keys)),
	}
}

// trim drops managedFields (noise: field names only) from a copy.
func trim(u *unstructured.Unstructured) *unstructured.Unstructured {
	c := u.DeepCopy()
	c.SetManagedFields(nil)
	return c
}

// withoutSchemas replaces a CRD's OpenAPI schemas (most of its bytes,
// and the release's manifests hold them) with their size.
func withoutSchemas(u *unstructured.Unstructured) *unstructured.Unstructured {
	versions, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
	for _, v := range versions {
		m, _ := v.(map[string]any)
		if s, ok := m["schema"]; ok {
			data, _ := json.Marshal(s)
			m["schema"] = fmt.Sprintf("(omitted: %d bytes)", len(data))
		}
	}
	if versions != nil {
		_ = unstructured.SetNestedSlice(u.Object, versions, "spec", "versions")
	}
	return u
}

// omitCABundles replaces every caBundle (public, long base64) with its
// size.
func omitCABundles(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if s, ok := x.(string); ok && k == "caBundle" {
				t[k] = fmt.Sprintf("(omitted: %d bytes)", len(s))
				continue
			}
			omitCABundles(x)
		}
	case []any:
		for _, x := range t {
			omitCABundles(x)
		}
	}
}

// listAll lists every object of a resource (dynamic), trimmed.
func (r *run) listAll(ctx context.Context, gvr schema.GroupVersionResource) ([]unstructured.Unstructured, error) {
	list, err := r.o.Cluster.Dynamic.Resource(gvr).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", resourceName(gvr), err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].GetName() < list.Items[j].GetName() })
	return list.Items, nil
}

// crdSummary is what cluster/crds.yaml says about a CRD.
type crdSummary struct {
	Name    string       `json:"name"`
	Group   string       `json:"group"`
	Kind    string       `json:"kind"`
	Scope   string       `json:"scope"`
	Tmbox   bool         `json:"managedByTmbox,omitempty"`
	Served  []string     `json:"served"`
	Storage string       `json:"storage,omitempty"`
	Stored  []string     `json:"storedVersions,omitempty"`
	Status  []crdCondRow `json:"conditions,omitempty"`
}

type crdCondRow struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// clusterCRDs writes cluster/crds.yaml: every CRD's names and versions.
func (r *run) clusterCRDs(ctx context.Context, s *sink) error {
	items, err := r.listAll(ctx, schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if err != nil {
		return err
	}
	out := make([]crdSummary, 0, len(items))
	for _, u := range items {
		c := crdSummary{Name: u.GetName(), Tmbox: u.GetLabels()[managedByLabel] == managedByValue}
		c.Group, _, _ = unstructured.NestedString(u.Object, "spec", "group")
		c.Kind, _, _ = unstructured.NestedString(u.Object, "spec", "names", "kind")
		c.Scope, _, _ = unstructured.NestedString(u.Object, "spec", "scope")
		versions, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
		for _, v := range versions {
			m, _ := v.(map[string]any)
			name, _ := m["name"].(string)
			if served, _ := m["served"].(bool); served {
				c.Served = append(c.Served, name)
			}
			if storage, _ := m["storage"].(bool); storage {
				c.Storage = name
			}
		}
		c.Stored, _, _ = unstructured.NestedStringSlice(u.Object, "status", "storedVersions")
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, x := range conds {
			m, _ := x.(map[string]any)
			row := crdCondRow{}
			row.Type, _ = m["type"].(string)
			row.Status, _ = m["status"].(string)
			if row.Status != "True" {
				row.Reason, _ = m["reason"].(string)
				row.Message, _ = m["message"].(string)
			}
			c.Status = append(c.Status, row)
		}
		out = append(out, c)
	}
	return s.yaml("cluster/crds.yaml", map[string]any{"crds": out})
}

// clusterWebhooks writes every validating and mutating webhook
// configuration, caBundles omitted.
func (r *run) clusterWebhooks(ctx context.Context, s *sink) error {
	var failed []string
	for _, res := range []string{"validatingwebhookconfigurations", "mutatingwebhookconfigurations"} {
		gvr := schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: res}
		items, err := r.listAll(ctx, gvr)
		if err != nil {
			s.warn("%v", err)
			failed = append(failed, err.Error())
			continue
		}
		if err := s.list("cluster/"+res+".yaml", withoutCABundles(items)); err != nil {
			return err
		}
	}
	if len(failed) == 2 {
		return fmt.Errorf("%s", strings.Join(failed, "; "))
	}
	return nil
}

// clusterAPIServices writes every APIService, caBundles omitted.
func (r *run) clusterAPIServices(ctx context.Context, s *sink) error {
	items, err := r.listAll(ctx, schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"})
	if err != nil {
		return err
	}
	return s.list("cluster/apiservices.yaml", withoutCABundles(items))
}

func withoutCABundles(items []unstructured.Unstructured) []any {
	out := make([]any, 0, len(items))
	for _, u := range items {
		t := trim(&u).Object
		omitCABundles(t)
		out = append(out, t)
	}
	return out
}

// releaseNamespaces are the namespaces tmbox manages, sorted.
func (r *run) releaseNamespaces() []string {
	return slices.Sorted(maps.Keys(r.namespaces))
}

// clusterPods writes cluster/pods/<namespace>.yaml for every release
// namespace, and keeps the pods for their logs.
func (r *run) clusterPods(ctx context.Context, s *sink) error {
	nss := r.releaseNamespaces()
	if len(nss) == 0 {
		s.note("no release namespaces: tmbox manages nothing on this cluster")
		return nil
	}
	var failed int
	for _, ns := range nss {
		pods, err := r.o.Cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			s.warn("list pods in %s: %v", ns, err)
			failed++
			continue
		}
		items := make([]any, 0, len(pods.Items))
		sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
		for _, p := range pods.Items {
			r.pods = append(r.pods, p)
			p.ManagedFields = nil
			p.APIVersion, p.Kind = "v1", "Pod"
			items = append(items, p)
		}
		if err := s.list("cluster/pods/"+safeName(ns)+".yaml", items); err != nil {
			return err
		}
	}
	if failed == len(nss) {
		return fmt.Errorf("no namespace's pods could be listed")
	}
	return nil
}

// eventTime is when an event last happened.
func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// clusterEvents writes cluster/events/<namespace>.yaml: the release
// namespaces' events of the last Since, oldest first.
func (r *run) clusterEvents(ctx context.Context, s *sink) error {
	nss := r.releaseNamespaces()
	if len(nss) == 0 {
		s.note("no release namespaces: tmbox manages nothing on this cluster")
		return nil
	}
	cutoff := r.o.Now().Add(-r.o.Since)
	var failed int
	for _, ns := range nss {
		evs, err := r.o.Cluster.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			s.warn("list events in %s: %v", ns, err)
			failed++
			continue
		}
		var keep []corev1.Event
		for _, e := range evs.Items {
			if !eventTime(&e).Before(cutoff) {
				keep = append(keep, e)
			}
		}
		if len(keep) == 0 {
			continue
		}
		sort.SliceStable(keep, func(i, j int) bool { return eventTime(&keep[i]).Before(eventTime(&keep[j])) })
		items := make([]any, 0, len(keep))
		for _, e := range keep {
			e.ManagedFields = nil
			e.APIVersion, e.Kind = "v1", "Event"
			items = append(items, e)
		}
		if err := s.list("cluster/events/"+safeName(ns)+".yaml", items); err != nil {
			return err
		}
	}
	if failed == len(nss) {
		return fmt.Errorf("no namespace's events could be listed")
	}
	return nil
}

// logRead is one container log to read.
type logRead struct {
	ns, pod, container string
	previous           bool
}

func (l logRead) path() string {
	name := safeName(l.container)
	if l.previous {
		name += ".previous"
	}
	return "cluster/logs/" + safeName(l.ns) + "/" + safeName(l.pod) + "/" + name + ".log"
}

func (l logRead) String() string {
	s := fmt.Sprintf("pod %s/%s container %s", l.ns, l.pod, l.container)
	if l.previous {
		s += " (previous)"
	}
	return s
}

// clusterLogs writes the last MaxLogLines lines of every container's
// current (within Since) and previous log in the release namespaces.
func (r *run) clusterLogs(ctx context.Context, s *sink) error {
	var reads []logRead
	for _, p := range r.pods {
		var names []string
		for _, c := range p.Spec.InitContainers {
			names = append(names, c.Name)
		}
		for _, c := range p.Spec.Containers {
			names = append(names, c.Name)
		}
		for _, c := range p.Spec.EphemeralContainers {
			names = append(names, c.Name)
		}
		for _, c := range names {
			reads = append(reads, logRead{p.Namespace, p.Name, c, false}, logRead{p.Namespace, p.Name, c, true})
		}
	}
	if len(reads) == 0 {
		s.note("no pods")
		return nil
	}
	since := int64(r.o.Since.Seconds())
	var (
		mu        sync.Mutex
		ok, empty int
		failed    []string
		writeErr  error
	)
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for _, l := range reads {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				return
			}
			opts := &corev1.PodLogOptions{Container: l.container, TailLines: &r.o.MaxLogLines, LimitBytes: &r.o.MaxLogBytes, Previous: l.previous}
			if !l.previous {
				opts.SinceSeconds = &since
			}
			lctx, cancel := context.WithTimeout(ctx, logFetchTimeout)
			data, err := r.o.Cluster.Logs.Logs(lctx, l.ns, l.pod, opts)
			cancel()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && l.previous && noPrevious(err):
				return
			case err != nil:
				failed = append(failed, fmt.Sprintf("%s: %v", l, err))
				return
			case len(data) == 0:
				empty++
				return
			}
			ok++
			if err := s.write(l.path(), tailLines(data, r.o.MaxLogLines, r.o.MaxLogBytes)); err != nil && writeErr == nil {
				writeErr = err
			}
		})
	}
	wg.Wait()
	if writeErr != nil {
		return writeErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	sort.Strings(failed)
	for _, f := range failed {
		s.warn("%s", f)
	}
	s.note("%d logs written, %d empty, %d could not be read", ok, empty, len(failed))
	if ok == 0 && len(failed) > 0 {
		return fmt.Errorf("none of %d container logs could be read (first: %s)", len(failed), failed[0])
	}
	return nil
}

// noPrevious is the API server saying a container never restarted.
func noPrevious(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "previous terminated container") && strings.Contains(msg, "not found")
}

// tailLines keeps the last lines lines and max bytes of a log.
func tailLines(data []byte, lines, max int64) []byte {
	if int64(len(data)) > max {
		data = dropPartialLine(data[int64(len(data))-max:])
	}
	end := len(data)
	if end > 0 && data[end-1] == '\n' {
		end--
	}
	n := int64(0)
	for i := end - 1; i >= 0; i-- {
		if data[i] == '\n' {
			n++
			if n == lines {
				return data[i+1:]
			}
		}
	}
	return data
}

// bounded runs f, which takes no context (discovery's calls), and returns
// early with ctx's error when ctx ends first; the client's own timeout
// ends f later.
func bounded[T any](ctx context.Context, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case res := <-ch:
		return res.v, res.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}
