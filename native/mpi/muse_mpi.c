// muse_mpi: the few MPI calls data-parallel training needs, as a Node-API addon over the system libmpi
// (Open MPI, MPICH). Every call is made from the JavaScript main thread; init asks for MPI_THREAD_FUNNELED and
// fails when the library grants less. Loaded by src/runtime/mpi.ts; built by `npm run build:mpi`.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <mpi.h>
#include <node_api.h>
#include <stdio.h>
#include <string.h>

static int initialized = 0;
static int finalized = 0;

static napi_value throw_error(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static napi_value mpi_error(napi_env env, const char *what, int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  char msg[MPI_MAX_ERROR_STRING + 128];
  MPI_Error_string(code, text, &len);
  snprintf(msg, sizeof msg, "%s failed: %.*s", what, len, text);
  return throw_error(env, msg);
}

static int check_ready(napi_env env) {
  if (!initialized) {
    throw_error(env, "MPI is not initialized (call init first)");
    return 0;
  }
  if (finalized) {
    throw_error(env, "MPI was finalized");
    return 0;
  }
  return 1;
}

static void set_int(napi_env env, napi_value obj, const char *name, int v) {
  napi_value x;
  napi_create_int32(env, v, &x);
  napi_set_named_property(env, obj, name, x);
}

// init() -> { rank, size, localRank, localSize, threadLevel, library }
static napi_value init(napi_env env, napi_callback_info info) {
  (void)info;
  if (initialized) return throw_error(env, "MPI init called twice");
  // Open MPI loads its components with dlopen and they need libmpi's symbols in the global namespace; Node loads
  // addons (and so libmpi) with RTLD_LOCAL. Re-open the already loaded libmpi with RTLD_GLOBAL first.
  Dl_info where;
  if (dladdr((void *)&MPI_Init_thread, &where) && where.dli_fname) dlopen(where.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
  int provided = 0;
  int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
  if (rc != MPI_SUCCESS) return mpi_error(env, "MPI_Init_thread", rc);
  initialized = 1;
  if (provided < MPI_THREAD_FUNNELED) {
    return throw_error(env, "MPI_Init_thread granted MPI_THREAD_SINGLE; muse needs at least MPI_THREAD_FUNNELED");
  }
  // Errors come back as return codes (thrown as JavaScript errors) instead of aborting inside the library.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, size = 1, local_rank = 0, local_size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm local;
  rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &local);
  if (rc != MPI_SUCCESS) return mpi_error(env, "MPI_Comm_split_type", rc);
  MPI_Comm_rank(local, &local_rank);
  MPI_Comm_size(local, &local_size);
  MPI_Comm_free(&local);
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int vlen = 0;
  MPI_Get_library_version(version, &vlen);
  char *eol = memchr(version, '\n', (size_t)vlen);
  if (eol) vlen = (int)(eol - version);

  napi_value out;
  napi_create_object(env, &out);
  set_int(env, out, "rank", rank);
  set_int(env, out, "size", size);
  set_int(env, out, "localRank", local_rank);
  set_int(env, out, "localSize", local_size);
  set_int(env, out, "threadLevel", provided);
  napi_value lib;
  napi_create_string_utf8(env, version, (size_t)vlen, &lib);
  napi_set_named_property(env, out, "library", lib);
  return out;
}

// The typed array argument i: its data pointer and element count, checked to be of `want` type.
static int typed_arg(napi_env env, napi_value arg, napi_typedarray_type want, const char *what, void **data, size_t *length) {
  bool is_typed = false;
  napi_is_typedarray(env, arg, &is_typed);
  napi_typedarray_type type;
  if (!is_typed || napi_get_typedarray_info(env, arg, &type, length, data, NULL, NULL) != napi_ok || type != want) {
    throw_error(env, what);
    return 0;
  }
  if (*length > (size_t)0x7fffffff) {
    throw_error(env, "buffer longer than 2^31-1 elements (split it)");
    return 0;
  }
  return 1;
}

// allreduceSumF32(Float32Array): the element-wise sum over all ranks, in place.
static napi_value allreduce_sum_f32(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!check_ready(env)) return NULL;
  void *data;
  size_t n;
  if (argc < 1 || !typed_arg(env, argv[0], napi_float32_array, "allreduceSumF32 expects a Float32Array", &data, &n)) return NULL;
  int rc = MPI_Allreduce(MPI_IN_PLACE, data, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) return mpi_error(env, "MPI_Allreduce", rc);
  return NULL;
}

// allreduceF64(Float64Array, op): op 0 sum, 1 min, 2 max, element-wise over all ranks, in place.
static napi_value allreduce_f64(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!check_ready(env)) return NULL;
  void *data;
  size_t n;
  if (argc < 2 || !typed_arg(env, argv[0], napi_float64_array, "allreduceF64 expects a Float64Array and an op", &data, &n)) return NULL;
  int op = -1;
  napi_get_value_int32(env, argv[1], &op);
  MPI_Op ops[3] = {MPI_SUM, MPI_MIN, MPI_MAX};
  if (op < 0 || op > 2) return throw_error(env, "allreduceF64: op must be 0 (sum), 1 (min) or 2 (max)");
  int rc = MPI_Allreduce(MPI_IN_PLACE, data, (int)n, MPI_DOUBLE, ops[op], MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) return mpi_error(env, "MPI_Allreduce", rc);
  return NULL;
}

static napi_value barrier(napi_env env, napi_callback_info info) {
  (void)info;
  if (!check_ready(env)) return NULL;
  int rc = MPI_Barrier(MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) return mpi_error(env, "MPI_Barrier", rc);
  return NULL;
}

static napi_value finalize(napi_env env, napi_callback_info info) {
  (void)info;
  if (!initialized || finalized) return NULL;
  finalized = 1;
  int rc = MPI_Finalize();
  if (rc != MPI_SUCCESS) return mpi_error(env, "MPI_Finalize", rc);
  return NULL;
}

// abort(code): ends every rank of the job (MPI_Abort); does not return.
static napi_value abort_all(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int code = 1;
  if (argc >= 1) napi_get_value_int32(env, argv[0], &code);
  if (!initialized || finalized) return throw_error(env, "MPI abort: MPI is not running");
  fflush(stdout);
  fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  return NULL;
}

static napi_value module_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"init", NULL, init, NULL, NULL, NULL, napi_default, NULL},
      {"allreduceSumF32", NULL, allreduce_sum_f32, NULL, NULL, NULL, napi_default, NULL},
      {"allreduceF64", NULL, allreduce_f64, NULL, NULL, NULL, napi_default, NULL},
      {"barrier", NULL, barrier, NULL, NULL, NULL, napi_default, NULL},
      {"finalize", NULL, finalize, NULL, NULL, NULL, napi_default, NULL},
      {"abort", NULL, abort_all, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, module_init)
