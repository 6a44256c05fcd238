package settings

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tmbox/tmbox/installer/apply"
)

// fullSettings sets every setting, on files that load.
func fullSettings(f testFiles) Settings {
	return Settings{
		Domain:           "apps.example.com",
		TLS:              &TLS{CertFile: f.cert, KeyFile: f.key, RedirectHTTP: true},
		Registry:         &Registry{PullSecret: f.pullSecret, CAFile: f.ca, SkipTagResolving: []string{"registry.internal:5000", "ko.local"}},
		HighAvailability: &HighAvailability{Replicas: 3},
		Config: map[string]map[string]Value{
			"config-autoscaler":                {"enable-scale-to-zero": "false", "stable-window": "90s"},
			"knative-eventing/config-features": {"new-apiserversource-filters": "enabled"},
			"config-network":                   {"http-protocol": "Redirected"},
		},
		Workloads: map[string]Workload{
			"knative-serving/activator": {
				Replicas: ptr(int32(5)),
				Containers: map[string]Container{"activator": {
					Resources: map[string]map[string]string{"requests": {"cpu": "0.5", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
					Env:       map[string]string{"GOGC": "200", "TMBOX_B": "b", "TMBOX_A": "a"},
				}},
				NodeSelector: map[string]string{"kubernetes.io/os": "linux"},
				Tolerations:  []map[string]any{{"key": "dedicated", "operator": "Equal", "value": "knative", "effect": "NoExecute", "tolerationSeconds": 30}},
				Affinity: map[string]any{"nodeAffinity": map[string]any{"requiredDuringSchedulingIgnoredDuringExecution": map[string]any{
					"nodeSelectorTerms": []any{map[string]any{"matchExpressions": []any{map[string]any{"key": "zone", "operator": "In", "values": []any{"a"}}}}},
				}}},
				Annotations: map[string]string{"example.com/team": "serving"},
				Labels:      map[string]string{"example.com/tier": "control-plane"},
			},
			"knative-eventing/request-reply": {Replicas: ptr(int32(2))},
			"knative-serving/webhook":        {Replicas: ptr(int32(0))},
		},
		Gateway: &Gateway{Type: GatewayLoadBalancer, LoadBalancerIP: "192.0.2.10", Annotations: map[string]string{"example.com/lb": "internal"}},
	}
}

// applyFull loads the full settings and applies them to a copy of the
// release's objects.
func applyFull(t *testing.T, pristine []*apply.Object) (Settings, testFiles, []*apply.Object, []*apply.Object) {
	t.Helper()
	f := validFiles(t)
	s := fullSettings(f)
	r, err := Load(s)
	if err != nil {
		t.Fatal(err)
	}
	objs := copyObjects(pristine)
	added, err := Apply(r, objs)
	if err != nil {
		t.Fatal(err)
	}
	return s, f, objs, added
}

func TestApplyRelease121(t *testing.T) {
	pristine := releaseObjects(t, "1.21")
	s, f, objs, added := applyFull(t, pristine)
	all := append(slices.Clone(objs), added...)

	t.Run("config keys set, _example and every other key byte-identical", func(t *testing.T) {
		want := map[string]map[string]string{
			"knative-serving/config-autoscaler": {"enable-scale-to-zero": "false", "stable-window": "90s"},
			"knative-eventing/config-features":  {"new-apiserversource-filters": "enabled"},
			"knative-serving/config-network":    {"http-protocol": "Redirected"},
			"knative-serving/config-domain":     {"apps.example.com": ""},
			"knative-serving/config-deployment": {SkipTagResolvingKey: "dev.local,kind.local,ko.local,registry.internal:5000"},
		}
		checked := 0
		for i, o := range pristine {
			if o.GetKind() != "ConfigMap" {
				continue
			}
			key := o.GetNamespace() + "/" + o.GetName()
			before, _, _ := unstructured.NestedStringMap(o.Object, "data")
			after, _, err := unstructured.NestedStringMap(objs[i].Object, "data")
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			expect := map[string]string{}
			for k, v := range before {
				expect[k] = v
			}
			for k, v := range want[key] {
				expect[k] = v
			}
			if len(expect) == 0 {
				expect = nil
			}
			if len(after) == 0 {
				after = nil
			}
			if !reflect.DeepEqual(after, expect) {
				t.Errorf("%s: data\n%v\nwant\n%v", key, after, expect)
			}
			if ex, ok := before[exampleKey]; ok {
				checked++
				if after[exampleKey] != ex {
					t.Errorf("%s: _example changed", key)
				}
			}
		}
		if checked < 15 {
			t.Errorf("only %d ConfigMaps with _example checked", checked)
		}
	})

	t.Run("TLS secret and HTTPS server", func(t *testing.T) {
		sec := find(t, added, "Secret", IstioNamespace, TLSSecretName)
		if typ, _, _ := unstructured.NestedString(sec.Object, "type"); typ != "kubernetes.io/tls" {
			t.Errorf("type %q", typ)
		}
		data, _, _ := unstructured.NestedStringMap(sec.Object, "data")
		if decode(t, data["tls.crt"]) != string(f.certPEM) || decode(t, data["tls.key"]) != string(f.keyPEM) {
			t.Errorf("Secret data is not the certificate and key")
		}
		if sec.Component != "istio" {
			t.Errorf("TLS Secret owned by %q, want istio", sec.Component)
		}
		gw := find(t, objs, "Gateway", ServingNamespace, IngressGatewayName)
		servers, _, _ := unstructured.NestedSlice(gw.Object, "spec", "servers")
		if len(servers) != 2 {
			t.Fatalf("servers %v", servers)
		}
		want := map[string]any{
			"port":  map[string]any{"number": int64(443), "name": "https", "protocol": "HTTPS"},
			"hosts": []any{"*"},
			"tls":   map[string]any{"mode": "SIMPLE", "credentialName": TLSSecretName},
		}
		if !reflect.DeepEqual(servers[1], want) {
			t.Errorf("HTTPS server %v, want %v", servers[1], want)
		}
		if redirect, _, _ := unstructured.NestedBool(servers[0].(map[string]any), "tls", "httpsRedirect"); !redirect {
			t.Errorf("HTTP server does not redirect: %v", servers[0])
		}
		local := find(t, objs, "Gateway", ServingNamespace, "knative-local-gateway")
		if !reflect.DeepEqual(local.Object, find(t, pristine, "Gateway", ServingNamespace, "knative-local-gateway").Object) {
			t.Errorf("knative-local-gateway changed")
		}
	})

	t.Run("pull secret in every namespace, referenced by every pod template", func(t *testing.T) {
		namespaces := map[string]bool{}
		for _, o := range pristine {
			ns := o.GetNamespace()
			if o.GetKind() == "Namespace" {
				ns = o.GetName()
			}
			if ns != "" && ns != "default" && !strings.HasPrefix(ns, "kube-") {
				namespaces[ns] = true
			}
		}
		owners := map[string]string{IstioNamespace: "istio", ServingNamespace: "knative-serving", EventingNamespace: "knative-eventing", "triggermesh": "triggermesh"}
		if len(namespaces) != len(owners) {
			t.Errorf("namespaces %v, want those of %v", namespaces, owners)
		}
		for ns := range namespaces {
			sec := find(t, added, "Secret", ns, PullSecretName)
			if typ, _, _ := unstructured.NestedString(sec.Object, "type"); typ != "kubernetes.io/dockerconfigjson" {
				t.Errorf("%s: type %q", ns, typ)
			}
			data, _, _ := unstructured.NestedStringMap(sec.Object, "data")
			if decode(t, data[".dockerconfigjson"]) != string(f.dockerConfig) {
				t.Errorf("%s: .dockerconfigjson is not the file", ns)
			}
			if sec.Component != owners[ns] {
				t.Errorf("%s: pull Secret owned by %q, want %q", ns, sec.Component, owners[ns])
			}
		}
		// Every pod spec anywhere in every object (found by its
		// containers list, independently of Apply's list of kinds).
		pods := 0
		for _, o := range all {
			for _, pod := range podSpecsIn(o.Object) {
				pods++
				refs := 0
				for _, ref := range pod["imagePullSecrets"].([]any) {
					if ref.(map[string]any)["name"] == PullSecretName {
						refs++
					}
				}
				if refs != 1 {
					t.Errorf("%s %s/%s%s: %d references to the pull secret, want 1", o.GetKind(), o.GetNamespace(), o.GetName(), o.GetGenerateName(), refs)
				}
			}
		}
		workloads := 0
		for _, o := range pristine {
			switch o.GetKind() {
			case "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet":
				workloads++
			}
		}
		if pods != workloads || pods < 20 {
			t.Errorf("%d pod specs checked, the release has %d workloads", pods, workloads)
		}
	})

	t.Run("CA mounted into the controller", func(t *testing.T) {
		cm := find(t, added, "ConfigMap", ServingNamespace, CAConfigMapName)
		if data, _, _ := unstructured.NestedStringMap(cm.Object, "data"); data[CAKey] != string(f.caPEM) || len(data) != 1 {
			t.Errorf("CA ConfigMap data %v", data)
		}
		if cm.Component != "knative-serving" {
			t.Errorf("CA ConfigMap owned by %q", cm.Component)
		}
		c := find(t, objs, "Deployment", ServingNamespace, ControllerName)
		pod := nestedMap(c.Object, "spec", "template", "spec")
		vol := findNamed(sliceOf(pod, "volumes"), CAConfigMapName)
		if !reflect.DeepEqual(vol, map[string]any{"name": CAConfigMapName, "configMap": map[string]any{"name": CAConfigMapName}}) {
			t.Errorf("volume %v", vol)
		}
		ctr := findNamed(sliceOf(pod, "containers"), ControllerName)
		mount := findNamed(sliceOf(ctr, "volumeMounts"), CAConfigMapName)
		if !reflect.DeepEqual(mount, map[string]any{"name": CAConfigMapName, "mountPath": "/tmbox-registry-ca", "readOnly": true}) {
			t.Errorf("mount %v", mount)
		}
		if env := findNamed(sliceOf(ctr, "env"), "SSL_CERT_DIR"); env["value"] != "/tmbox-registry-ca:/etc/ssl/certs" {
			t.Errorf("SSL_CERT_DIR %v", env)
		}
		sum := sha256.Sum256(f.caPEM)
		if got := nestedMap(c.Object, "spec", "template", "metadata", "annotations")[CAHashAnnotation]; got != hex.EncodeToString(sum[:]) {
			t.Errorf("CA hash annotation %v", got)
		}
		before := find(t, pristine, "Deployment", ServingNamespace, ControllerName)
		if n, m := len(sliceOf(ctr, "env")), len(sliceOf(findNamed(sliceOf(nestedMap(before.Object, "spec", "template", "spec"), "containers"), ControllerName), "env")); n != m+1 {
			t.Errorf("controller env: %d variables, want the %d upstream ones and SSL_CERT_DIR", n, m)
		}
	})

	t.Run("high availability replicas and autoscaler bounds", func(t *testing.T) {
		override := map[string]int64{"knative-serving/activator": 5, "knative-serving/webhook": 0}
		ha := map[string]bool{}
		for _, key := range HighAvailabilityDeployments() {
			ha[key] = true
			ns, name, _ := strings.Cut(key, "/")
			want := int64(3)
			if n, ok := override[key]; ok {
				want = n
			}
			if got, _ := toInt64(nestedMap(find(t, objs, "Deployment", ns, name).Object, "spec")["replicas"]); got != want {
				t.Errorf("%s: replicas %d, want %d", key, got, want)
			}
		}
		for i, o := range pristine {
			key := o.GetNamespace() + "/" + o.GetName()
			if o.GetKind() == "Deployment" && !ha[key] {
				// The pull secret reference is the one change.
				got := objs[i].DeepCopy()
				delete(nestedMap(got.Object, "spec", "template", "spec"), "imagePullSecrets")
				if !reflect.DeepEqual(o.Object, got.Object) {
					t.Errorf("Deployment %s is not in high availability's list but changed", key)
				}
			}
		}
		hpas := 0
		for i, o := range pristine {
			if o.GetKind() != "HorizontalPodAutoscaler" {
				continue
			}
			hpas++
			target := o.GetNamespace() + "/" + nestedMap(o.Object, "spec", "scaleTargetRef")["name"].(string)
			lo, _ := toInt64(nestedMap(o.Object, "spec")["minReplicas"])
			hi, _ := toInt64(nestedMap(o.Object, "spec")["maxReplicas"])
			r := int64(3)
			if n, ok := override[target]; ok {
				r = n
			}
			wantLo, wantHi := max(lo, r), max(hi, r)
			if r == 0 {
				wantLo, wantHi = lo, hi
			}
			gotLo, _ := toInt64(nestedMap(objs[i].Object, "spec")["minReplicas"])
			gotHi, _ := toInt64(nestedMap(objs[i].Object, "spec")["maxReplicas"])
			if gotLo != wantLo || gotHi != wantHi {
				t.Errorf("HPA %s/%s of %s: %d–%d, want %d–%d (upstream %d–%d)", o.GetNamespace(), o.GetName(), target, gotLo, gotHi, wantLo, wantHi, lo, hi)
			}
		}
		if hpas != 6 {
			t.Errorf("%d HPAs in release 1.21, want 6 (activator, webhook, eventing-webhook, broker ingress and filter, istiod)", hpas)
		}
		if got, _ := toInt64(nestedMap(find(t, objs, "StatefulSet", EventingNamespace, "request-reply").Object, "spec")["replicas"]); got != 2 {
			t.Errorf("StatefulSet request-reply replicas %d", got)
		}
	})

	t.Run("workload overrides in the pod template", func(t *testing.T) {
		w := s.Workloads["knative-serving/activator"]
		o := find(t, objs, "Deployment", ServingNamespace, "activator")
		tmpl := nestedMap(o.Object, "spec", "template")
		pod := nestedMap(tmpl, "spec")
		ctr := findNamed(sliceOf(pod, "containers"), "activator")
		wantRes := map[string]any{"requests": map[string]any{"cpu": "500m", "memory": "128Mi"}, "limits": map[string]any{"memory": "1Gi"}}
		if !reflect.DeepEqual(ctr["resources"], wantRes) {
			t.Errorf("resources %v, want %v", ctr["resources"], wantRes)
		}
		var names []string
		for _, e := range sliceOf(ctr, "env") {
			names = append(names, e.(map[string]any)["name"].(string))
		}
		wantNames := []string{"GOGC", "POD_NAME", "POD_IP", "SYSTEM_NAMESPACE", "CONFIG_LOGGING_NAME", "CONFIG_OBSERVABILITY_NAME", "TMBOX_A", "TMBOX_B"}
		if !slices.Equal(names, wantNames) {
			t.Errorf("env %v, want %v", names, wantNames)
		}
		if gogc := findNamed(sliceOf(ctr, "env"), "GOGC"); !reflect.DeepEqual(gogc, map[string]any{"name": "GOGC", "value": "200"}) {
			t.Errorf("GOGC %v", gogc)
		}
		if !reflect.DeepEqual(pod["nodeSelector"], map[string]any{"kubernetes.io/os": "linux"}) {
			t.Errorf("nodeSelector %v", pod["nodeSelector"])
		}
		wantTol := []any{map[string]any{"key": "dedicated", "operator": "Equal", "value": "knative", "effect": "NoExecute", "tolerationSeconds": int64(30)}}
		if !reflect.DeepEqual(pod["tolerations"], wantTol) {
			t.Errorf("tolerations %#v", pod["tolerations"])
		}
		if !reflect.DeepEqual(pod["affinity"], w.Affinity) {
			t.Errorf("affinity %v, want %v", pod["affinity"], w.Affinity)
		}
		meta := nestedMap(tmpl, "metadata")
		if nestedMap(meta, "annotations")["example.com/team"] != "serving" || nestedMap(meta, "labels")["example.com/tier"] != "control-plane" {
			t.Errorf("pod template metadata %v", meta)
		}
		before := nestedMap(find(t, pristine, "Deployment", ServingNamespace, "activator").Object, "spec", "template", "metadata")
		for k, v := range nestedMap(before, "labels") {
			if nestedMap(meta, "labels")[k] != v {
				t.Errorf("upstream label %s=%v lost", k, v)
			}
		}
	})

	t.Run("gateway Service", func(t *testing.T) {
		svc := find(t, objs, "Service", IstioNamespace, GatewayServiceName)
		spec := nestedMap(svc.Object, "spec")
		if spec["type"] != "LoadBalancer" || spec["loadBalancerIP"] != "192.0.2.10" {
			t.Errorf("spec %v", spec)
		}
		if a := svc.GetAnnotations(); a["example.com/lb"] != "internal" {
			t.Errorf("annotations %v", a)
		}
	})

	t.Run("added objects sorted, nothing else added", func(t *testing.T) {
		var got []string
		for _, o := range added {
			got = append(got, fmt.Sprintf("%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName()))
		}
		want := []string{
			"Secret istio-system/" + TLSSecretName,
			"Secret istio-system/" + PullSecretName,
			"Secret knative-eventing/" + PullSecretName,
			"ConfigMap knative-serving/" + CAConfigMapName,
			"Secret knative-serving/" + PullSecretName,
			"Secret triggermesh/" + PullSecretName,
		}
		if !slices.Equal(got, want) {
			t.Errorf("added\n%v\nwant\n%v", got, want)
		}
	})

	t.Run("objects prepare for the applier", func(t *testing.T) {
		for _, o := range copyObjects(all) {
			if err := apply.Prepare(o, "1.21"); err != nil {
				t.Errorf("%s: %v", apply.KeyOf(o.Unstructured), err)
			}
		}
	})

	t.Run("idempotent", func(t *testing.T) {
		r, err := Load(s)
		if err != nil {
			t.Fatal(err)
		}
		once := copyObjects(objs)
		again, err := Apply(r, objs)
		if err != nil {
			t.Fatal(err)
		}
		if !equalObjects(objs, once) {
			t.Errorf("a second Apply changed the objects")
		}
		if !equalObjects(again, added) {
			t.Errorf("a second Apply added other objects")
		}
		// Over the objects and what the first Apply added: nothing new.
		withAdded := append(copyObjects(objs), copyObjects(added)...)
		snapshot := copyObjects(withAdded)
		more, err := Apply(r, withAdded)
		if err != nil {
			t.Fatal(err)
		}
		if len(more) != 0 || !equalObjects(withAdded, snapshot) {
			t.Errorf("Apply over its own output added %d objects or changed some", len(more))
		}
	})

	t.Run("deterministic", func(t *testing.T) {
		_, _, objs2, _ := applyFull(t, pristine)
		// The files differ (new keys), so compare what does not depend on them.
		for i := range objs {
			if objs[i].GetName() == ControllerName && objs[i].GetKind() == "Deployment" {
				continue
			}
			if !reflect.DeepEqual(objs[i].Object, objs2[i].Object) {
				t.Errorf("%s: two Applies of the same settings differ", apply.KeyOf(objs[i].Unstructured))
			}
		}
	})
}

// TestApplyEachRule applies one setting at a time and checks it changes
// only what it should.
func TestApplyEachRule(t *testing.T) {
	pristine := releaseObjects(t, "1.21")
	f := validFiles(t)
	tests := []struct {
		name    string
		s       Settings
		changed []string // keys of the objects that change
		added   int
	}{
		{"domain", Settings{Domain: "apps.example.com"}, []string{"ConfigMap knative-serving/config-domain"}, 0},
		{"config", Settings{Config: map[string]map[string]Value{"config-autoscaler": {"min-scale": "1"}}}, []string{"ConfigMap knative-serving/config-autoscaler"}, 0},
		{"tls", Settings{TLS: &TLS{CertFile: f.cert, KeyFile: f.key}}, []string{"Gateway.networking.istio.io knative-serving/knative-ingress-gateway"}, 1},
		{"skipTagResolving", Settings{Registry: &Registry{SkipTagResolving: []string{"registry.internal"}}}, []string{"ConfigMap knative-serving/config-deployment"}, 0},
		{"caFile", Settings{Registry: &Registry{CAFile: f.ca}}, []string{"Deployment.apps knative-serving/controller"}, 1},
		{"gateway", Settings{Gateway: &Gateway{Type: GatewayClusterIP}}, []string{"Service istio-system/istio-ingressgateway"}, 0},
		{"workload", Settings{Workloads: map[string]Workload{"triggermesh/triggermesh-webhook": {Replicas: ptr(int32(2))}}}, []string{"Deployment.apps triggermesh/triggermesh-webhook"}, 0},
		{"workload with an HPA", Settings{Workloads: map[string]Workload{"knative-eventing/eventing-webhook": {Replicas: ptr(int32(7))}}},
			[]string{"Deployment.apps knative-eventing/eventing-webhook", "HorizontalPodAutoscaler.autoscaling knative-eventing/eventing-webhook"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Load(tt.s)
			if err != nil {
				t.Fatal(err)
			}
			objs := copyObjects(pristine)
			added, err := Apply(r, objs)
			if err != nil {
				t.Fatal(err)
			}
			var changed []string
			for i := range objs {
				if !reflect.DeepEqual(objs[i].Object, pristine[i].Object) {
					changed = append(changed, apply.KeyOf(objs[i].Unstructured).String())
				}
			}
			sort.Strings(changed)
			if !slices.Equal(changed, tt.changed) || len(added) != tt.added {
				t.Errorf("changed %v and added %d, want %v and %d", changed, len(added), tt.changed, tt.added)
			}
		})
	}
}

// TestApplyOtherReleases applies every setting to releases 1.22's real
// objects and checks the pull secret reaches every pod template.
func TestApplyOtherReleases(t *testing.T) {
	for _, release := range []string{"1.22"} {
		t.Run(release, func(t *testing.T) {
			objs := releaseObjects(t, release)
			f := validFiles(t)
			if err := Check(fullSettings(f), release, objs); err != nil {
				t.Fatal(err)
			}
			r, err := Load(fullSettings(f))
			if err != nil {
				t.Fatal(err)
			}
			added, err := Apply(r, objs)
			if err != nil {
				t.Fatal(err)
			}
			pods := 0
			for _, o := range append(objs, added...) {
				for _, pod := range podSpecsIn(o.Object) {
					pods++
					if findNamed(sliceOf(pod, "imagePullSecrets"), PullSecretName) == nil {
						t.Errorf("%s %s/%s%s does not reference the pull secret", o.GetKind(), o.GetNamespace(), o.GetName(), o.GetGenerateName())
					}
				}
			}
			if pods < 20 {
				t.Errorf("only %d pod specs", pods)
			}
		})
	}
}

func TestApplyGatewayClusterIPDropsNodePorts(t *testing.T) {
	svc := &apply.Object{Component: "istio", Unstructured: &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": GatewayServiceName, "namespace": IstioNamespace},
		"spec": map[string]any{"type": "NodePort", "ports": []any{
			map[string]any{"name": "http2", "port": int64(80), "nodePort": int64(31080)},
		}},
	}}}
	r := &Resolved{Settings: Settings{Gateway: &Gateway{Type: GatewayClusterIP}}}
	if _, err := Apply(r, []*apply.Object{svc}); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"type": "ClusterIP", "ports": []any{map[string]any{"name": "http2", "port": int64(80)}}}
	if !reflect.DeepEqual(svc.Object["spec"], want) {
		t.Errorf("spec %v, want %v", svc.Object["spec"], want)
	}
}

func TestApplyRefuses(t *testing.T) {
	pristine := releaseObjects(t, "1.21")
	f := validFiles(t)
	tests := []struct {
		name string
		r    *Resolved
		want string
	}{
		{"what Check refuses", &Resolved{Settings: Settings{Workloads: map[string]Workload{"knative-serving/nope": {}}}},
			"platform.workloads.knative-serving/nope: the release has no Deployment or StatefulSet"},
		{"files not loaded", &Resolved{Settings: Settings{TLS: &TLS{CertFile: f.cert, KeyFile: f.key}}},
			"platform.tls: the certificate and key were not loaded (use Load)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := copyObjects(pristine)
			_, err := Apply(tt.r, objs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
			if !equalObjects(objs, pristine) {
				t.Errorf("a refused Apply changed objects")
			}
		})
	}
	if added, err := Apply(nil, pristine); err != nil || added != nil {
		t.Errorf("Apply(nil): %v, %v", added, err)
	}
}

// podSpecsIn finds every pod spec in an object by its containers list (a
// list of maps with an image), wherever it is.
func podSpecsIn(m map[string]any) []map[string]any {
	var out []map[string]any
	if cs, ok := m["containers"].([]any); ok && len(cs) > 0 {
		if c, ok := cs[0].(map[string]any); ok && c["image"] != nil {
			out = append(out, m)
		}
	}
	for _, v := range m {
		switch x := v.(type) {
		case map[string]any:
			out = append(out, podSpecsIn(x)...)
		case []any:
			for _, item := range x {
				if im, ok := item.(map[string]any); ok {
					out = append(out, podSpecsIn(im)...)
				}
			}
		}
	}
	return out
}

// equalObjects compares objects deeply.
func equalObjects(a, b []*apply.Object) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Component != b[i].Component || a[i].Create != b[i].Create || !reflect.DeepEqual(a[i].Object, b[i].Object) {
			return false
		}
	}
	return true
}

// decode decodes a Secret's base64 value.
func decode(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
