/** Several replicas on one database: membership and heartbeat, and messages between replicas. */
export { HEARTBEAT_MS, REPLICA_TTL_MS, ReplicaRegistry, newReplicaId } from './replica-registry.js';
export { MAX_BUS_PAYLOAD_BYTES, PostgresBus, type ClusterBus } from './cluster-bus.js';
