/* inferforge's in-process Triton backend: the Python-backend models of an inferforge repository, run inside
 * tritonserver's own process instead of a stub process per model.
 *
 * Triton's Python backend runs each model in a stub process and hands every batch over through shared memory
 * and interprocess condition variables: two process switches per request and a copy of every tensor each way,
 * which on a 2-core machine costs more than a millisecond per request (BENCHMARKS.md, "Serving on Triton").
 * This backend embeds CPython in tritonserver (the libpython the 3.11 stub already needs) and calls the same
 * `model.py` through `inferforge.triton.inprocess`, which gives it the few `triton_python_backend_utils` names it
 * uses. Tensors cross as memoryviews of Triton's own buffers, answers are copied once into Triton's output buffers.
 *
 * Built by `inferforge.triton.inprocess.build_backend` with the system C compiler against the running Python:
 *   cc -shared -fPIC -O2 inprocess_backend.c -I<python include> -L<python libdir> -lpython3.11 -ldl
 * and linked by `inferforge serve` as backends/inferforge/libtriton_inferforge.so in the server's backend directory.
 * The Python side is found through the environment: INFERFORGE_INPROCESS_PYTHON (the virtual environment's
 * python, so that its site-packages are on sys.path).
 *
 * The Triton C API is declared below from its public documentation (tritonbackend.h / tritonserver.h, API 1.x):
 * only the calls used here, with the enum values they need.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct TRITONSERVER_Error TRITONSERVER_Error;
typedef struct TRITONSERVER_Message TRITONSERVER_Message;
typedef struct TRITONBACKEND_Backend TRITONBACKEND_Backend;
typedef struct TRITONBACKEND_Model TRITONBACKEND_Model;
typedef struct TRITONBACKEND_ModelInstance TRITONBACKEND_ModelInstance;
typedef struct TRITONBACKEND_Request TRITONBACKEND_Request;
typedef struct TRITONBACKEND_Response TRITONBACKEND_Response;
typedef struct TRITONBACKEND_Input TRITONBACKEND_Input;
typedef struct TRITONBACKEND_Output TRITONBACKEND_Output;

enum { ERR_UNKNOWN = 0, ERR_INTERNAL = 1, ERR_NOT_FOUND = 2, ERR_INVALID_ARG = 3, ERR_UNAVAILABLE = 4,
       ERR_UNSUPPORTED = 5 };
enum { MEMORY_CPU = 0 };
enum { PARAMETER_STRING = 0, PARAMETER_INT = 1, PARAMETER_BOOL = 2 };
enum { RESPONSE_COMPLETE_FINAL = 1, REQUEST_RELEASE_ALL = 1 };
#define API_MAJOR 1u
#define API_MINOR 10u /* the calls used here are all in 1.10 */

extern TRITONSERVER_Error *TRITONSERVER_ErrorNew(int code, const char *message);
extern void TRITONSERVER_ErrorDelete(TRITONSERVER_Error *error);
extern const char *TRITONSERVER_ErrorMessage(TRITONSERVER_Error *error);
extern TRITONSERVER_Error *TRITONSERVER_MessageSerializeToJson(TRITONSERVER_Message *message, const char **base,
                                                               size_t *byte_size);
extern TRITONSERVER_Error *TRITONSERVER_MessageDelete(TRITONSERVER_Message *message);
extern TRITONSERVER_Error *TRITONBACKEND_ApiVersion(uint32_t *major, uint32_t *minor);
extern TRITONSERVER_Error *TRITONBACKEND_ModelName(TRITONBACKEND_Model *model, const char **name);
extern TRITONSERVER_Error *TRITONBACKEND_ModelVersion(TRITONBACKEND_Model *model, uint64_t *version);
extern TRITONSERVER_Error *TRITONBACKEND_ModelRepository(TRITONBACKEND_Model *model, int *artifact_type,
                                                         const char **location);
extern TRITONSERVER_Error *TRITONBACKEND_ModelConfig(TRITONBACKEND_Model *model, uint32_t config_version,
                                                     TRITONSERVER_Message **config);
extern TRITONSERVER_Error *TRITONBACKEND_ModelSetState(TRITONBACKEND_Model *model, void *state);
extern TRITONSERVER_Error *TRITONBACKEND_ModelState(TRITONBACKEND_Model *model, void **state);
extern TRITONSERVER_Error *TRITONBACKEND_ModelInstanceName(TRITONBACKEND_ModelInstance *instance, const char **name);
extern TRITONSERVER_Error *TRITONBACKEND_ModelInstanceSetState(TRITONBACKEND_ModelInstance *instance, void *state);
extern TRITONSERVER_Error *TRITONBACKEND_ModelInstanceState(TRITONBACKEND_ModelInstance *instance, void **state);
extern TRITONSERVER_Error *TRITONBACKEND_ModelInstanceModel(TRITONBACKEND_ModelInstance *instance,
                                                            TRITONBACKEND_Model **model);
extern TRITONSERVER_Error *TRITONBACKEND_ModelInstanceReportStatistics(
    TRITONBACKEND_ModelInstance *instance, TRITONBACKEND_Request *request, bool success, uint64_t exec_start_ns,
    uint64_t compute_start_ns, uint64_t compute_end_ns, uint64_t exec_end_ns);
extern TRITONSERVER_Error *TRITONBACKEND_ModelInstanceReportBatchStatistics(
    TRITONBACKEND_ModelInstance *instance, uint64_t batch_size, uint64_t exec_start_ns, uint64_t compute_start_ns,
    uint64_t compute_end_ns, uint64_t exec_end_ns);
extern TRITONSERVER_Error *TRITONBACKEND_RequestId(TRITONBACKEND_Request *request, const char **id);
extern TRITONSERVER_Error *TRITONBACKEND_RequestInputCount(TRITONBACKEND_Request *request, uint32_t *count);
extern TRITONSERVER_Error *TRITONBACKEND_RequestInputByIndex(TRITONBACKEND_Request *request, uint32_t index,
                                                             TRITONBACKEND_Input **input);
extern TRITONSERVER_Error *TRITONBACKEND_RequestOutputCount(TRITONBACKEND_Request *request, uint32_t *count);
extern TRITONSERVER_Error *TRITONBACKEND_RequestOutputName(TRITONBACKEND_Request *request, uint32_t index,
                                                           const char **name);
extern TRITONSERVER_Error *TRITONBACKEND_RequestParameterCount(TRITONBACKEND_Request *request, uint32_t *count);
extern TRITONSERVER_Error *TRITONBACKEND_RequestParameter(TRITONBACKEND_Request *request, uint32_t index,
                                                          const char **key, int *type, const void **value);
extern TRITONSERVER_Error *TRITONBACKEND_RequestRelease(TRITONBACKEND_Request *request, uint32_t release_flags);
extern TRITONSERVER_Error *TRITONBACKEND_InputProperties(TRITONBACKEND_Input *input, const char **name,
                                                         int *datatype, const int64_t **shape, uint32_t *dims_count,
                                                         uint64_t *byte_size, uint32_t *buffer_count);
extern TRITONSERVER_Error *TRITONBACKEND_InputBuffer(TRITONBACKEND_Input *input, uint32_t index, const void **buffer,
                                                     uint64_t *buffer_byte_size, int *memory_type,
                                                     int64_t *memory_type_id);
extern TRITONSERVER_Error *TRITONBACKEND_ResponseNew(TRITONBACKEND_Response **response,
                                                     TRITONBACKEND_Request *request);
extern TRITONSERVER_Error *TRITONBACKEND_ResponseDelete(TRITONBACKEND_Response *response);
extern TRITONSERVER_Error *TRITONBACKEND_ResponseOutput(TRITONBACKEND_Response *response,
                                                        TRITONBACKEND_Output **output, const char *name,
                                                        int datatype, const int64_t *shape, uint32_t dims_count);
extern TRITONSERVER_Error *TRITONBACKEND_OutputBuffer(TRITONBACKEND_Output *output, void **buffer,
                                                      uint64_t buffer_byte_size, int *memory_type,
                                                      int64_t *memory_type_id);
extern TRITONSERVER_Error *TRITONBACKEND_ResponseSend(TRITONBACKEND_Response *response, uint32_t send_flags,
                                                      TRITONSERVER_Error *error);

#define SHIM_MODULE "inferforge.triton.inprocess"

static PyObject *shim; /* the imported SHIM_MODULE, for the life of the process */

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The pending Python exception as a Triton error (the GIL held), cleared. */
static TRITONSERVER_Error *python_error(const char *what) {
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  PyErr_NormalizeException(&type, &value, &traceback);
  const char *text = NULL;
  PyObject *described = value ? PyObject_Str(value) : NULL;
  if (described) text = PyUnicode_AsUTF8(described);
  if (!text) PyErr_Clear();
  char message[2048];
  snprintf(message, sizeof message, "%s: %s", what, text ? text : "unknown Python error");
  if (traceback && type) PyErr_Display(type, value, traceback); /* the whole traceback in the server log */
  Py_XDECREF(described);
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(traceback);
  return TRITONSERVER_ErrorNew(ERR_INTERNAL, message);
}

/* CPython, started once for the process, the GIL released afterwards. Its symbols are made global first: Triton
 * opens backends with RTLD_LOCAL, and extension modules (numpy, onnxruntime) find the interpreter's symbols in the
 * global scope. */
static TRITONSERVER_Error *start_python(void) {
  if (Py_IsInitialized()) return NULL; /* by another copy of this library (one per model folder) */
  Dl_info info;
  if (!dladdr((void *)&Py_IsInitialized, &info) || !dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL))
    return TRITONSERVER_ErrorNew(ERR_INTERNAL, "inferforge in-process backend: cannot make libpython global");
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  config.install_signal_handlers = 0; /* SIGINT and SIGTERM stay tritonserver's */
  config.parse_argv = 0;
  const char *python = getenv("INFERFORGE_INPROCESS_PYTHON");
  if (python && *python) {
    /* The virtual environment's interpreter path: Python finds pyvenv.cfg beside it and its site-packages. */
    PyStatus status = PyConfig_SetBytesString(&config, &config.program_name, python);
    if (PyStatus_Exception(status)) {
      PyConfig_Clear(&config);
      return TRITONSERVER_ErrorNew(ERR_INTERNAL, "inferforge in-process backend: bad INFERFORGE_INPROCESS_PYTHON");
    }
  }
  PyStatus status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(status)) {
    char message[512];
    snprintf(message, sizeof message, "inferforge in-process backend: Python did not start: %s",
             status.err_msg ? status.err_msg : "unknown");
    return TRITONSERVER_ErrorNew(ERR_INTERNAL, message);
  }
  PyEval_SaveThread();
  return NULL;
}

/* The shim module (the GIL held): each copy of this library imports it once. */
static TRITONSERVER_Error *import_shim(void) {
  if (shim) return NULL;
  shim = PyImport_ImportModule(SHIM_MODULE);
  return shim ? NULL : python_error("inferforge in-process backend: cannot import " SHIM_MODULE);
}

TRITONSERVER_Error *TRITONBACKEND_Initialize(TRITONBACKEND_Backend *backend) {
  (void)backend;
  uint32_t major = 0, minor = 0;
  TRITONSERVER_Error *error = TRITONBACKEND_ApiVersion(&major, &minor);
  if (error) return error;
  if (major != API_MAJOR || minor < API_MINOR)
    return TRITONSERVER_ErrorNew(ERR_UNSUPPORTED, "inferforge in-process backend needs Triton backend API 1.10+");
  return start_python();
}

/* What a model's instances are loaded from: its name, config (JSON), folder and version. */
typedef struct {
  char *name, *config, *location;
  size_t config_size;
  uint64_t version;
} ModelSource;

static void free_source(ModelSource *source) {
  if (!source) return;
  free(source->name);
  free(source->config);
  free(source->location);
  free(source);
}

TRITONSERVER_Error *TRITONBACKEND_ModelInitialize(TRITONBACKEND_Model *model) {
  const char *name = NULL, *location = NULL, *json = NULL;
  uint64_t version = 0;
  int artifact_type = 0;
  size_t json_size = 0;
  TRITONSERVER_Message *config = NULL;
  TRITONSERVER_Error *error = TRITONBACKEND_ModelName(model, &name);
  if (!error) error = TRITONBACKEND_ModelVersion(model, &version);
  if (!error) error = TRITONBACKEND_ModelRepository(model, &artifact_type, &location);
  if (!error) error = TRITONBACKEND_ModelConfig(model, 1, &config);
  if (!error) error = TRITONSERVER_MessageSerializeToJson(config, &json, &json_size);
  ModelSource *source = NULL;
  if (!error) {
    source = calloc(1, sizeof *source);
    if (source) {
      source->name = strdup(name);
      source->location = strdup(location);
      source->config = malloc(json_size + 1);
      if (source->config) {
        memcpy(source->config, json, json_size);
        source->config[json_size] = 0;
      }
      source->config_size = json_size;
      source->version = version;
    }
    if (!source || !source->name || !source->location || !source->config)
      error = TRITONSERVER_ErrorNew(ERR_INTERNAL, "inferforge in-process backend: out of memory");
  }
  if (config) TRITONSERVER_MessageDelete(config);
  if (!error) error = TRITONBACKEND_ModelSetState(model, source);
  if (error) free_source(source);
  return error;
}

TRITONSERVER_Error *TRITONBACKEND_ModelFinalize(TRITONBACKEND_Model *model) {
  void *state = NULL;
  TRITONSERVER_Error *error = TRITONBACKEND_ModelState(model, &state);
  if (!error) free_source(state);
  return error;
}

/* Each instance loads its own copy of the model code and engine, as each Python-backend stub does: the batches of
 * `--instances N` run in parallel without sharing a session. */
TRITONSERVER_Error *TRITONBACKEND_ModelInstanceInitialize(TRITONBACKEND_ModelInstance *instance) {
  TRITONBACKEND_Model *model;
  void *state = NULL;
  const char *instance_name = "";
  TRITONSERVER_Error *error = TRITONBACKEND_ModelInstanceModel(instance, &model);
  if (!error) error = TRITONBACKEND_ModelState(model, &state);
  if (!error) error = TRITONBACKEND_ModelInstanceName(instance, &instance_name);
  if (error) return error;
  ModelSource *source = state;
  PyGILState_STATE gil = PyGILState_Ensure();
  PyObject *loaded = NULL;
  error = import_shim();
  if (!error) {
    loaded = PyObject_CallMethod(shim, "load_model", "ss#sKs", source->name, source->config,
                                 (Py_ssize_t)source->config_size, source->location,
                                 (unsigned long long)source->version, instance_name);
    if (!loaded) error = python_error("inferforge in-process backend: model initialize failed");
  }
  PyGILState_Release(gil);
  if (error) return error;
  return TRITONBACKEND_ModelInstanceSetState(instance, loaded); /* the reference is the state's until finalize */
}

TRITONSERVER_Error *TRITONBACKEND_ModelInstanceFinalize(TRITONBACKEND_ModelInstance *instance) {
  void *state = NULL;
  TRITONSERVER_Error *error = TRITONBACKEND_ModelInstanceState(instance, &state);
  if (error || !state) return error;
  PyGILState_STATE gil = PyGILState_Ensure();
  PyObject *result = PyObject_CallMethod((PyObject *)state, "finalize", NULL);
  if (!result) PyErr_Clear();
  Py_XDECREF(result);
  Py_DECREF((PyObject *)state);
  PyGILState_Release(gil);
  return NULL;
}

/* One request as the shim takes it: (id, {name: (datatype, shape, memoryview)}, (output names), {key: value}).
 * The memoryviews read Triton's buffers in place (an input in several buffers is joined into bytes); they are
 * valid until the request is released, after the shim has answered. */
static PyObject *request_tuple(TRITONBACKEND_Request *request, TRITONSERVER_Error **error) {
  const char *id = "";
  uint32_t count = 0;
  if ((*error = TRITONBACKEND_RequestId(request, &id))) return NULL;
  if ((*error = TRITONBACKEND_RequestInputCount(request, &count))) return NULL;
  PyObject *inputs = PyDict_New();
  for (uint32_t i = 0; i < count && !*error; ++i) {
    TRITONBACKEND_Input *input;
    const char *name;
    int datatype;
    const int64_t *shape;
    uint32_t dims, buffers;
    uint64_t size;
    if ((*error = TRITONBACKEND_RequestInputByIndex(request, i, &input))) break;
    if ((*error = TRITONBACKEND_InputProperties(input, &name, &datatype, &shape, &dims, &size, &buffers))) break;
    PyObject *dims_tuple = PyTuple_New(dims);
    for (uint32_t d = 0; d < dims; ++d) PyTuple_SET_ITEM(dims_tuple, d, PyLong_FromLongLong(shape[d]));
    PyObject *data = NULL;
    if (buffers == 1) {
      const void *buffer;
      uint64_t buffer_size;
      int memory_type = MEMORY_CPU;
      int64_t memory_id = 0;
      if ((*error = TRITONBACKEND_InputBuffer(input, 0, &buffer, &buffer_size, &memory_type, &memory_id))) {
        Py_DECREF(dims_tuple);
        break;
      }
      data = PyMemoryView_FromMemory((char *)buffer, (Py_ssize_t)buffer_size, PyBUF_READ);
    } else {
      data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
      char *cursor = PyBytes_AS_STRING(data);
      for (uint32_t b = 0; b < buffers && !*error; ++b) {
        const void *buffer;
        uint64_t buffer_size;
        int memory_type = MEMORY_CPU;
        int64_t memory_id = 0;
        *error = TRITONBACKEND_InputBuffer(input, b, &buffer, &buffer_size, &memory_type, &memory_id);
        if (!*error) {
          memcpy(cursor, buffer, buffer_size);
          cursor += buffer_size;
        }
      }
    }
    PyObject *entry = Py_BuildValue("(iNN)", datatype, dims_tuple, data);
    PyDict_SetItemString(inputs, name, entry);
    Py_DECREF(entry);
  }
  uint32_t outputs_count = 0;
  if (!*error) *error = TRITONBACKEND_RequestOutputCount(request, &outputs_count);
  PyObject *outputs = PyTuple_New(*error ? 0 : outputs_count);
  for (uint32_t i = 0; i < outputs_count && !*error; ++i) {
    const char *name;
    if (!(*error = TRITONBACKEND_RequestOutputName(request, i, &name)))
      PyTuple_SET_ITEM(outputs, i, PyUnicode_FromString(name));
  }
  uint32_t parameters_count = 0;
  PyObject *parameters = PyDict_New();
  if (!*error) *error = TRITONBACKEND_RequestParameterCount(request, &parameters_count);
  for (uint32_t i = 0; i < parameters_count && !*error; ++i) {
    const char *key;
    int type;
    const void *value;
    if ((*error = TRITONBACKEND_RequestParameter(request, i, &key, &type, &value))) break;
    PyObject *item = type == PARAMETER_STRING ? PyUnicode_DecodeUTF8(value, strlen(value), "replace")
                     : type == PARAMETER_INT  ? PyLong_FromLongLong(*(const int64_t *)value)
                     : type == PARAMETER_BOOL ? PyBool_FromLong(*(const bool *)value)
                                              : Py_NewRef(Py_None);
    PyDict_SetItemString(parameters, key, item);
    Py_DECREF(item);
  }
  if (*error) {
    Py_DECREF(inputs);
    Py_DECREF(outputs);
    Py_DECREF(parameters);
    return NULL;
  }
  return Py_BuildValue("(sNNN)", id ? id : "", inputs, outputs, parameters);
}

/* Fills `response` from the shim's answer to one request: a list of (name, datatype, shape, buffer) or an
 * (error code, message) tuple. Returns the error to send with it (NULL: success). */
static TRITONSERVER_Error *fill_response(TRITONBACKEND_Response *response, PyObject *answer) {
  if (PyTuple_Check(answer)) {
    int code = (int)PyLong_AsLong(PyTuple_GetItem(answer, 0));
    /* A message may quote the request's bad text: lone surrogates become escapes, not a lost error. */
    PyObject *message = PyUnicode_AsEncodedString(PyTuple_GetItem(answer, 1), "utf-8", "backslashreplace");
    if (!message || PyErr_Occurred()) {
      Py_XDECREF(message);
      return python_error("inferforge in-process backend: unreadable error");
    }
    TRITONSERVER_Error *error = TRITONSERVER_ErrorNew(code, PyBytes_AS_STRING(message));
    Py_DECREF(message);
    return error;
  }
  if (!PyList_Check(answer))
    return TRITONSERVER_ErrorNew(ERR_INTERNAL, "inferforge in-process backend: an answer is neither outputs nor error");
  Py_ssize_t count = PyList_Size(answer);
  for (Py_ssize_t i = 0; i < count; ++i) {
    PyObject *name, *shape, *data;
    int datatype;
    if (!PyArg_ParseTuple(PyList_GetItem(answer, i), "UiO!O", &name, &datatype, &PyTuple_Type, &shape, &data))
      return python_error("inferforge in-process backend: bad output");
    Py_ssize_t dims = PyTuple_Size(shape);
    int64_t sizes[16];
    if (dims > 16) return TRITONSERVER_ErrorNew(ERR_INTERNAL, "inferforge in-process backend: over 16 dimensions");
    for (Py_ssize_t d = 0; d < dims; ++d) sizes[d] = PyLong_AsLongLong(PyTuple_GetItem(shape, d));
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_C_CONTIGUOUS) != 0)
      return python_error("inferforge in-process backend: output without a contiguous buffer");
    TRITONBACKEND_Output *output;
    void *buffer = NULL;
    int memory_type = MEMORY_CPU;
    int64_t memory_id = 0;
    TRITONSERVER_Error *error =
        TRITONBACKEND_ResponseOutput(response, &output, PyUnicode_AsUTF8(name), datatype, sizes, (uint32_t)dims);
    if (!error) error = TRITONBACKEND_OutputBuffer(output, &buffer, (uint64_t)view.len, &memory_type, &memory_id);
    if (!error && view.len) memcpy(buffer, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    if (error) return error;
  }
  return NULL;
}

TRITONSERVER_Error *TRITONBACKEND_ModelInstanceExecute(TRITONBACKEND_ModelInstance *instance,
                                                       TRITONBACKEND_Request **requests, const uint32_t count) {
  uint64_t exec_start = now_ns();
  void *state = NULL;
  TRITONSERVER_Error *failed = TRITONBACKEND_ModelInstanceState(instance, &state);
  PyGILState_STATE gil = PyGILState_Ensure();
  PyObject *batch = PyList_New(0);
  PyObject *answers = NULL;
  TRITONSERVER_Error **request_errors = calloc(count, sizeof *request_errors);
  for (uint32_t r = 0; r < count && !failed; ++r) {
    PyObject *item = request_tuple(requests[r], &request_errors[r]);
    /* A request whose inputs cannot be read is answered with that error alone; the shim gets None for it. */
    PyList_Append(batch, item ? item : Py_None);
    Py_XDECREF(item);
  }
  uint64_t compute_start = now_ns();
  if (!failed) {
    answers = PyObject_CallMethod((PyObject *)state, "execute", "O", batch);
    if (!answers || !PyList_Check(answers) || PyList_Size(answers) != (Py_ssize_t)count) {
      failed = answers ? TRITONSERVER_ErrorNew(ERR_INTERNAL, "inferforge in-process backend: wrong answer count")
                       : python_error("inferforge in-process backend: execute failed");
    }
  }
  uint64_t compute_end = now_ns();
  for (uint32_t r = 0; r < count; ++r) {
    TRITONBACKEND_Response *response = NULL;
    TRITONSERVER_Error *error = TRITONBACKEND_ResponseNew(&response, requests[r]);
    if (!error) {
      TRITONSERVER_Error *answer_error =
          request_errors[r] ? request_errors[r]
          : failed          ? TRITONSERVER_ErrorNew(ERR_INTERNAL, TRITONSERVER_ErrorMessage(failed))
                            : fill_response(response, PyList_GetItem(answers, r));
      request_errors[r] = NULL;
      TRITONSERVER_Error *unsent = TRITONBACKEND_ResponseSend(response, RESPONSE_COMPLETE_FINAL, answer_error);
      if (unsent) TRITONSERVER_ErrorDelete(unsent); /* the client is gone: nothing left to tell it */
      if (answer_error) TRITONSERVER_ErrorDelete(answer_error);
      TRITONBACKEND_ModelInstanceReportStatistics(instance, requests[r], answer_error == NULL, exec_start,
                                                  compute_start, compute_end, now_ns());
    } else {
      TRITONSERVER_ErrorDelete(error);
      if (request_errors[r]) TRITONSERVER_ErrorDelete(request_errors[r]);
    }
    TRITONBACKEND_RequestRelease(requests[r], REQUEST_RELEASE_ALL);
  }
  Py_XDECREF(answers);
  Py_DECREF(batch);
  PyGILState_Release(gil);
  free(request_errors);
  TRITONBACKEND_ModelInstanceReportBatchStatistics(instance, count, exec_start, compute_start, compute_end, now_ns());
  if (failed) TRITONSERVER_ErrorDelete(failed);
  return NULL; /* every request has its response: nothing for Triton to answer */
}
