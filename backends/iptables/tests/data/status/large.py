# Writes large-manifests/services.yaml: 1,001 ClusterIP services (comments go off above
# 1,000 service ports), the first 40 also NodePorts (a port-range tree). What
# src/status.rs's large_expected() expects of it.
out = []
for i in range(1001):
    a, b = divmod(i, 250)
    ip = f"10.97.{a}.{b+1}"
    np = i < 40
    typ = "NodePort" if np else "ClusterIP"
    nodeport = f", nodePort: {31000 + i*3}" if np else ""
    out.append(f"""apiVersion: v1
kind: Service
metadata: {{name: s{i}, namespace: big}}
spec:
  type: {typ}
  clusterIP: {ip}
  clusterIPs: [{ip}]
  ports:
  - {{name: http, port: 80, targetPort: 8080{nodeport}, protocol: TCP}}
""")
    if i % 101 == 7:
        continue  # no endpoints: rejected
    extra = f"""
- addresses: [10.245.{i // 250}.{i % 250 + 1}]
  nodeName: node-b""" if i % 10 == 0 else ""
    out.append(f"""apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: s{i}-1
  namespace: big
  labels: {{kubernetes.io/service-name: s{i}}}
addressType: IPv4
ports:
- {{name: http, port: 8080, protocol: TCP}}
endpoints:
- addresses: [10.244.{1 + i % 2}.{i % 250 + 1}]
  nodeName: node-{'a' if i % 2 == 0 else 'b'}{extra}
""")
open("large-manifests/services.yaml", "w").write("---\n".join(out))
