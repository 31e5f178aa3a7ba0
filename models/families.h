/* The model families salient serves; each lives in its own file (models/<family>.c). */
#ifndef SALIENT_MODELS_FAMILIES_H
#define SALIENT_MODELS_FAMILIES_H

#include "models/model.h"

extern const struct mdl_family mdl_family_densenet;    /* densenet.c: DenseNet-121 and kin (CheXNet, torchxrayvision) */
extern const struct mdl_family mdl_family_resnet;      /* resnet.c: ResNet-18/34/50/101 classifiers */
extern const struct mdl_family mdl_family_swin;        /* swin.c: Swin-T/S/B/L, linear or SwinCheX head */
extern const struct mdl_family mdl_family_quadrant_ae; /* quadrant_ae.c: 2x2 quadrants -> backbones -> AE -> SLP/MLP/SVM */
extern const struct mdl_family mdl_family_faceapi;     /* faceapi.c: face-api's detectors and heads, the face pipeline */
extern const struct mdl_image_ops mdl_faceapi_image_ops; /* faceapi.c: it takes decoded images */

#endif
