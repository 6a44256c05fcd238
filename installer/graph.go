package installer

import (
	"fmt"

	"github.com/tmbox/tmbox/catalog"
)

// level is how far a component's converge has come; another component
// can wait for it.
type level int

const (
	// levelCRDs: the run's namespaces and CRDs are applied and the CRDs
	// Established (the component's kinds are served).
	levelCRDs level = iota + 1
	// levelWorkloads: every object of the component that runs pods
	// (Deployments, Jobs, …) is written. On a first install its workloads
	// go in while the CRDs are being Established, so this can come before
	// levelCRDs.
	levelWorkloads
	// levelApplied: every object of the component is written and its
	// Jobs are created.
	levelApplied
	// levelWebhooks: every Service the component's admission webhooks
	// call has a ready endpoint (its webhooks answer).
	levelWebhooks
	// levelReady: the component converged — workloads Available, Jobs
	// complete, APIServices Available, webhooks answering.
	levelReady
)

// implies lists the levels reaching l reaches with it.
func (l level) implies() []level {
	switch l {
	case levelApplied:
		return []level{levelCRDs, levelWorkloads}
	case levelWebhooks:
		return []level{levelCRDs, levelWorkloads, levelApplied}
	case levelReady:
		return []level{levelCRDs, levelWorkloads, levelApplied, levelWebhooks}
	}
	return nil
}

// levels are every level.
func levels() []level {
	return []level{levelCRDs, levelWorkloads, levelApplied, levelWebhooks, levelReady}
}

func (l level) String() string {
	switch l {
	case levelCRDs:
		return "its CRDs Established"
	case levelWorkloads:
		return "its workloads written"
	case levelApplied:
		return "its objects applied"
	case levelWebhooks:
		return "its webhooks answering"
	case levelReady:
		return "ready"
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// need is one dependency: before a component's late objects — custom
// resources of the run's CRDs, webhook configurations, APIServices, Jobs,
// and (unless the run's CRDs are all new) its workloads; see
// apply.Wave.Early — are applied, component on must have reached level.
// Its early objects (RBAC, ConfigMaps, Services, and on a first install
// its workloads) need only their namespace and go in while the CRDs are
// being Established.
type need struct {
	on    string
	level level
	// why is the reason, for docs and messages.
	why string
}

// sinkBinding is why Knative Eventing goes last: its SinkBinding webhook
// (SINK_BINDING_SELECTION_MODE=exclusion, failurePolicy Fail) fills in
// rules for Deployments, Jobs and the other pod-spec kinds in every
// namespace once its configuration is there and its pod runs. Every other
// component's workloads are written before Eventing's webhook
// configurations, so none is written while that webhook starts up and
// cannot answer.
const sinkBinding = "Knative Eventing's SinkBinding webhook intercepts Deployments and Jobs in every namespace once it is registered"

// componentNeeds is the install's dependency graph: what each component's
// late objects wait for, beyond the run's namespaces and CRDs, which are
// applied together first and Established before any late object (so a
// need of another's CRDs is met by then; it is stated anyway, and
// enforced). A component with no entry waits for nothing.
// docs/development.md explains each edge; the graph must stay acyclic
// (TestComponentNeeds) and every edge is enforced
// (TestPipelineHonoursNeeds).
func componentNeeds() map[string][]need {
	return map[string][]need{
		catalog.NetIstio: {
			{on: catalog.Istio, level: levelWebhooks, why: "its Gateways and PeerAuthentications are Istio's kinds, validated by istiod's webhook"},
			{on: catalog.KnativeServing, level: levelCRDs, why: "its controller reconciles Knative Serving's kinds"},
		},
		catalog.KnativeEventing: {
			{on: catalog.Istio, level: levelWorkloads, why: sinkBinding},
			{on: catalog.KnativeServing, level: levelApplied, why: sinkBinding + " (Serving's post-install Jobs too)"},
			{on: catalog.NetIstio, level: levelWorkloads, why: sinkBinding},
			{on: catalog.TriggerMesh, level: levelWorkloads, why: sinkBinding},
			{on: catalog.TriggerMeshCore, level: levelWorkloads, why: sinkBinding},
		},
		catalog.TriggerMesh: {
			{on: catalog.KnativeEventing, level: levelCRDs, why: "its controller watches Knative Eventing's kinds"},
		},
		catalog.TriggerMeshCore: {
			{on: catalog.KnativeEventing, level: levelCRDs, why: "its brokers are Knative Eventing addressables"},
		},
	}
}

// hopAlone lists the phases an upgrade or downgrade hop converges alone,
// before any later phase's component is touched: Istio moves first and
// must be ready before Knative moves, so that a hop failing in Istio
// rolls back Istio alone (TestIntegrationRollbackOnlyTouched). A first
// install converges every component phase together.
func hopAlone() []string { return []string{PhaseIstio} }
