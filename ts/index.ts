/**
 * hogwild-kv public API. Explicit re-exports only.
 */
export { listBackends, createBackend, BACKEND_ORDER } from './backend/select.js';
export type {
  AttentionBatch,
  Backend,
  BackendChoice,
  BackendName,
  BackendStatus,
  CreateBackendOptions,
  KvStore,
  RopeParams,
  RopeScaling,
  StoreParams,
  StoreStats,
} from './backend/types.js';
export {
  AbortError,
  BackendUnavailableError,
  DeviceError,
  DisposedError,
  HogwildError,
  InternalError,
  InvalidArgumentError,
  ModelFormatError,
  OutOfMemoryError,
  OutOfRangeError,
  TokenizerError,
  UnsupportedError,
} from './errors.js';
export type { HogwildErrorCode } from './errors.js';
