package settings

import (
	"strings"
	"testing"

	"github.com/tmbox/tmbox/installer/apply"
)

func TestCheck(t *testing.T) {
	objs := releaseObjects(t, "1.21")
	noNetIstio := without(objs, func(o *apply.Object) bool { return o.Component == "net-istio" })
	noServing := without(objs, func(o *apply.Object) bool { return o.Component == "knative-serving" })
	noIstio := without(objs, func(o *apply.Object) bool { return o.Component == "istio" })
	cfg := func(cm string) Settings {
		return Settings{Config: map[string]map[string]Value{cm: {"some-key": "x"}}}
	}
	wl := func(key string, w Workload) Settings { return Settings{Workloads: map[string]Workload{key: w}} }
	tests := []struct {
		name string
		s    Settings
		objs []*apply.Object
		want []string // substrings of the one error, or none for no error
	}{
		{"every setting the release can honour", Settings{
			Domain:           "apps.example.com",
			TLS:              &TLS{CertFile: "a", KeyFile: "b", RedirectHTTP: true},
			Registry:         &Registry{PullSecret: "p", CAFile: "c", SkipTagResolving: []string{"registry.internal"}},
			HighAvailability: &HighAvailability{Replicas: 2},
			Config: map[string]map[string]Value{
				"config-autoscaler":                {"enable-scale-to-zero": "false"},
				"knative-serving/config-features":  {"multi-container": "enabled"},
				"knative-eventing/config-features": {"new-apiserversource-filters": "enabled"},
				"config-istio":                     {"some-key": "x"},
				"config-br-defaults":               {"default-br-config": "{}"},
			},
			Workloads: map[string]Workload{
				"knative-serving/activator":          {Containers: map[string]Container{"activator": {}}, Labels: map[string]string{"app": "activator", "extra": "x"}},
				"knative-eventing/request-reply":     {Replicas: ptr(int32(2))},
				"triggermesh/triggermesh-controller": {Containers: map[string]Container{"controller": {}}},
			},
			Gateway: &Gateway{Type: GatewayNodePort},
		}, objs, nil},
		{"unknown ConfigMap", cfg("config-nope"), objs, []string{
			`platform.config.config-nope: release 1.21 has no Knative ConfigMap "config-nope"; its Knative ConfigMaps: `,
			"config-autoscaler, ", "config-br-defaults, ", "config-istio, ",
			"knative-eventing/config-features, ", "knative-serving/config-features, ",
		}},
		{"ConfigMap of another namespace", cfg("istio-system/istio"), objs, []string{
			`platform.config.istio-system/istio: release 1.21 has no Knative ConfigMap "istio-system/istio"`,
		}},
		{"qualified name in the wrong namespace", cfg("knative-eventing/config-autoscaler"), objs, []string{
			`release 1.21 has no Knative ConfigMap "knative-eventing/config-autoscaler"`,
		}},
		{"ambiguous config-features", cfg("config-features"), objs, []string{
			`platform.config.config-features: release 1.21 has a ConfigMap "config-features" in more than one namespace: write knative-eventing/config-features or knative-serving/config-features`,
		}},
		{"unknown workload", wl("knative-serving/nope", Workload{}), objs, []string{
			`platform.workloads.knative-serving/nope: release 1.21 has no Deployment or StatefulSet "knative-serving/nope"; its workloads: `,
			"istio-system/istio-ingressgateway, istio-system/istiod, knative-eventing/eventing-controller, ",
			"knative-eventing/request-reply, ", "knative-serving/activator, ", "triggermesh/triggermesh-webhook",
		}},
		{"a Service is not a workload", wl("knative-serving/activator-service", Workload{}), objs, []string{
			`has no Deployment or StatefulSet "knative-serving/activator-service"`,
		}},
		{"unknown container", wl("knative-serving/activator", Workload{Containers: map[string]Container{"queue-proxy": {}}}), objs, []string{
			`platform.workloads.knative-serving/activator.containers.queue-proxy: Deployment knative-serving/activator has no container "queue-proxy"; its containers: activator`,
		}},
		{"label the selector matches on", wl("knative-serving/activator", Workload{Labels: map[string]string{"app": "mine"}}), objs, []string{
			`platform.workloads.knative-serving/activator.labels.app: Deployment knative-serving/activator selects its pods by app=activator: the label cannot be changed`,
		}},
		{"TLS without the Knative ingress Gateway", Settings{TLS: &TLS{CertFile: "a", KeyFile: "b"}}, noNetIstio, []string{
			`platform.tls: release 1.21 has no Knative ingress Gateway knative-serving/knative-ingress-gateway`,
		}},
		{"CA without Knative Serving's controller", Settings{Registry: &Registry{CAFile: "c"}}, noServing, []string{
			`platform.registry.caFile: release 1.21 has no Knative Serving controller (Deployment knative-serving/controller)`,
		}},
		{"domain without config-domain", Settings{Domain: "a.example.com"}, noServing, []string{
			`platform.domain: release 1.21 has no ConfigMap knative-serving/config-domain`,
		}},
		{"gateway without the Istio gateway Service", Settings{Gateway: &Gateway{Type: GatewayClusterIP}}, noIstio, []string{
			`platform.gateway: release 1.21 has no Service istio-system/istio-ingressgateway`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.s, "1.21", tt.objs)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if len(Errors(err)) != 1 {
				t.Fatalf("want one error, got: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n  %v\nwant it to contain\n  %s", err, w)
				}
			}
		})
	}
}
