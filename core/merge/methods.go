package merge

// The methods freelunch knows, registered in one place. Each lives in its own file with its
// parameter declarations and kernel.
func init() {
	for _, m := range []Method{
		linear{}, taskArithmetic, ties, dareLinear, dareTies,
		breadcrumbs, breadcrumbsTies, della, dellaLinear,
		slerp{}, nuslerp{}, modelStock{}, passthrough{},
	} {
		Register(m)
	}
}
