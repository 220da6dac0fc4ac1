package merge_test

import (
	"fmt"

	"freelunch/core/merge"
)

// A kernel runs its statistics passes over the tensor, then merges it. SLERP halfway
// between two orthogonal unit vectors gives √2/2 in both coordinates.
func Example_slerp() {
	m, _ := merge.Lookup("slerp")
	k := m.New(&merge.Tensor{Name: "w", Shape: []int64{2}, N: 2, HasBase: true,
		Models: []int{0, 1}, Args: []merge.Params{{}, {}}, Global: merge.Params{"t": 0.5}})
	in := [][]float32{{1, 0}, {0, 1}} // the base, then the other model
	for pass := 0; k.NeedPass(pass); pass++ {
		k.Observe(pass, 0, in)
	}
	dst := make([]float32, 2)
	k.Merge(dst, 0, in)
	fmt.Println(dst)
	// Output: [0.70710677 0.70710677]
}
