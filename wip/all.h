/* Every part, in lmu.h order (temporary, until they are spliced in). */
#include "wip/gemm.h"
#include "wip/tape.h"
#include "wip/kernels.h"
#include "wip/lti.h"
#include "wip/safetensors.h"
#include "wip/config.h"
#include "wip/model.h"
