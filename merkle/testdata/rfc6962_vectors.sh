#!/bin/sh
# Recomputes, with nothing but xxd and sha256sum, every hash of the classic
# 8-leaf RFC 6962 / Certificate Transparency reference tree that
# vectors_test.go writes down, so the table can be checked independently of
# any Go code:  sh merkle/testdata/rfc6962_vectors.sh
set -eu
leaf() { { printf '\000'; printf '%s' "$1" | xxd -r -p; } | sha256sum | cut -d' ' -f1; }
node() { { printf '\001'; printf '%s%s' "$1" "$2" | xxd -r -p; } | sha256sum | cut -d' ' -f1; }

echo "empty  $(printf '' | sha256sum | cut -d' ' -f1)"
i=0
for d in "" 00 10 2021 3031 40414243 5051525354555657 606162636465666768696a6b6c6d6e6f; do
	eval "l$i=$(leaf "$d")"
	eval "echo \"leaf$i  \$l$i\""
	i=$((i + 1))
done
n10=$(node "$l0" "$l1"); n11=$(node "$l2" "$l3"); n12=$(node "$l4" "$l5"); n13=$(node "$l6" "$l7")
n20=$(node "$n10" "$n11"); n21=$(node "$n12" "$n13"); n30=$(node "$n20" "$n21")
echo "node(1,0) $n10"; echo "node(1,1) $n11"; echo "node(1,2) $n12"; echo "node(1,3) $n13"
echo "node(2,0) $n20"; echo "node(2,1) $n21"; echo "node(3,0) $n30"
# Roots per RFC 6962 MTH: split at the largest power of two below n.
echo "root1 $l0"
echo "root2 $n10"
echo "root3 $(node "$n10" "$l2")"
echo "root4 $n20"
echo "root5 $(node "$n20" "$l4")"
echo "root6 $(node "$n20" "$n12")"
echo "root7 $(node "$n20" "$(node "$n12" "$l6")")"
echo "root8 $n30"

# Proofs derived by hand from RFC 6962 §2.1.1 PATH and §2.1.2 SUBPROOF (the
# ones not in the published CT set); each is recombined here, the way the
# tree shape dictates, and must give the root of its size.
ok() { if [ "$1" = "$2" ]; then echo "ok   $3"; else echo "FAIL $3"; exit 1; fi; }
# Published roots (CT merkle_tree_test, transparency-dev proof/verify_test.go).
r3=aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77
r5=4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4
r7=ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c
r8=5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328
ok "$(node "$n20" "$(node "$n12" "$(node "$l6" "$l7")")")" "$r8" "inclusion(7,8) = [leaf6 node(1,2) node(2,0)]"
ok "$(node "$n20" "$(node "$(node "$l4" "$l5")" "$l6")")" "$r7" "inclusion(4,7) = [leaf5 leaf6 node(2,0)]"
ok "$(node "$n20" "$(node "$n12" "$l6")")" "$r7" "inclusion(6,7) = [node(1,2) node(2,0)]"
# consistency(3,7) = [leaf2 leaf3 node(1,0) MTH(D[4:7])]
m47=$(node "$n12" "$l6")
ok "$(node "$n10" "$l2")" "$r3" "consistency(3,7) old root"
ok "$(node "$(node "$n10" "$(node "$l2" "$l3")")" "$m47")" "$r7" "consistency(3,7) new root"
echo "MTH(D[4:7]) $m47"
# consistency(4,8) = [node(2,1)]
ok "$(node "$n20" "$n21")" "$n30" "consistency(4,8) new root"
# consistency(5,8) = [leaf4 leaf5 node(1,3) node(2,0)]: old root node(2,0)+leaf4
ok "$(node "$n20" "$l4")" "$r5" "consistency(5,8) old root"
ok "$(node "$n20" "$(node "$(node "$l4" "$l5")" "$n13")")" "$n30" "consistency(5,8) new root"
# consistency(1,2) = [leaf1]
ok "$(node "$l0" "$l1")" "$n10" "consistency(1,2) new root"
# consistency(7,8) = [leaf6 leaf7 node(1,2) node(2,0)]
ok "$(node "$n20" "$(node "$n12" "$l6")")" "$r7" "consistency(7,8) old root"
ok "$(node "$n20" "$(node "$n12" "$(node "$l6" "$l7")")")" "$n30" "consistency(7,8) new root"
