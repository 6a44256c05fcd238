package preflight

// CheckNames lists every check's name, host checks first, for validating
// --ignore-preflight-errors and for docs.
func CheckNames() []string {
	return []string{
		CheckOSArch, CheckCPU, CheckMemory, CheckDisk, CheckContainerEngine, CheckCgroups, CheckInotify, CheckPorts, CheckProxy,
		CheckClusterReachable, CheckKubernetesVersion, CheckRBAC, CheckNodesReady, CheckCapacity, CheckStorageClass, CheckForeignInstall, CheckDomain, CheckLoadBalancer,
	}
}
