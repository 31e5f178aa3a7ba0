/* face-api's detection geometry: decoding the detectors' outputs into boxes, its two NMS variants,
 * the crops it cuts for the heads, landmark post-processing and the aligned face box.
 *
 *   struct mdl_fa_box det[100];
 *   float score[100];
 *   int n = mdl_fa_ssd_detect(act, out, img_w, img_h, 0.5f, 0.5f, 100, det, score);  // best first
 *   struct mdl_fa_rect crop;
 *   if (mdl_fa_crop(&det[0], img_w, img_h, &crop)) ...   // the pixels face-api's extractFaceTensors slices
 *
 * Everything after the networks is JavaScript arithmetic in face-api, i.e. doubles, including
 * its round trips between relative and absolute coordinates (Box.rescale by 1/width, then by
 * width): they are kept here operation for operation, because a crop's edge is a floor() of
 * these numbers and one pixel more or less changes every head's input. Internal to the
 * faceapi family.
 */
#ifndef SALIENT_MODELS_FACEAPI_DETECT_H
#define SALIENT_MODELS_FACEAPI_DETECT_H

#include <stdbool.h>

#include "engine/arena.h"
#include "models/faceapi.h"

/* face-api's Box: x, y, width, height (right = x + width). */
struct mdl_fa_box {
    double x, y, w, h;
};

/* An integer region of an image, inside it. */
struct mdl_fa_rect {
    int x, y, w, h;
};

/* SSD: one image's decoded boxes and scores (mdl_fa_net_forward's output for ssd_mobilenetv1)
 * -> up to max_out faces in image pixels, best first (face-api's nonMaxSuppression of
 * ssdMobilenetv1: candidates scoring > score_thr, a candidate kept unless its IoU with a kept
 * one exceeds iou_thr; boxes clipped to the padded square, then scaled). Work space comes from
 * act and is given back. Returns the count, or -1 with a message (arena too small). */
int mdl_fa_ssd_detect(struct eng_arena *act, const float *raw, int img_w, int img_h, float score_thr, float iou_thr,
                      int max_out, struct mdl_fa_box *boxes, float *scores);

/* Tiny detector: the raw [g, g, 25] grid for an input of side input_size -> up to max_out faces
 * (face-api's TinyYolov2 extractBoxes, then its greedy NMS on boxes scaled to input_size). */
int mdl_fa_tiny_detect(struct eng_arena *act, const float *raw, int input_size, int img_w, int img_h,
                       float score_thr, float iou_thr, int max_out, struct mdl_fa_box *boxes, float *scores);

/* face-api's extractFaceTensors for one box: forSize(image) (a relative round trip),
 * clipAtImageBorders, floor. False when nothing of the box is inside the image (face-api then
 * drops the face). */
bool mdl_fa_crop(const struct mdl_fa_box *box, int img_w, int img_h, struct mdl_fa_rect *crop);

/* FaceLandmark68Net's postProcess and FaceLandmarks68.shiftBy: raw (136 outputs for the 112 x 112
 * input made from crop) -> the 68 points in image pixels, shifted by the detection box det. */
void mdl_fa_landmarks(const float *raw, const struct mdl_fa_rect *crop, const struct mdl_fa_box *det,
                      double pts[MDL_FACE_LANDMARKS][2]);

/* FaceLandmarks.align() (the min box of the points padded by 20 %) and the alignedRect
 * FaceDetection made from it: the box the heads' crops are cut from. */
void mdl_fa_align(const double pts[MDL_FACE_LANDMARKS][2], int img_w, int img_h, struct mdl_fa_box *aligned);

/* FaceLandmarks.align(null, {useDlibAlignment: true}), what face-api's descriptor task crops:
 * a square of side floor(mean eye-to-mouth distance / 0.45) placed at the centre of the eyes and
 * the mouth (0.5 across, 0.43 down), sized against the detection crop (crop_w x crop_h, the
 * landmarks' image dimensions in face-api). */
void mdl_fa_align_dlib(const double pts[MDL_FACE_LANDMARKS][2], int crop_w, int crop_h, struct mdl_fa_box *box);

/* extractFaceTensors for a plain Rect (no relative round trip): clip, floor. False when empty. */
bool mdl_fa_crop_rect(const struct mdl_fa_box *box, int img_w, int img_h, struct mdl_fa_rect *crop);

#endif
