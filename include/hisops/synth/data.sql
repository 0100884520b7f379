-- 批量数据生成 Bulk data, one INSERT ... SELECT per table.
--
-- Each "-- @table" section is run once per chunk with :lo/:hi set to a range of row ids
-- (plus the seed and n_<table> counts); the helper functions come from functions.sql.
-- Rows depend only on (seed, id), never on other rows, so chunks of any table can be loaded
-- in any order and in parallel, before the primary and foreign keys exist.
-- "OFFSET 0" keeps a subquery from being flattened so that a computed value reaches the
-- next level as a plain column (see the inlining note in functions.sql).

-- @doctor
INSERT INTO doctor (doctor_id, department_id, staff_no, name, gender, title, license_no, phone, hire_date, is_active)
SELECT d, pg_temp.doctor_dept(d), 'YS' || lpad(d::text, 5, '0'), pg_temp.person_name(131, d, female),
       CASE WHEN female THEN '女' ELSE '男' END,
       pg_temp.pick('{主任医师,副主任医师,副主任医师,主治医师,主治医师,主治医师,住院医师,住院医师}', 135, d),
       '999' || lpad((pg_temp.h(136, d) % 1000000000000)::text, 12, '0'),
       '100' || lpad((pg_temp.h(137, d) % 100000000)::text, 8, '0'),
       date '2000-01-01' + (pg_temp.h(138, d) % 8000)::integer,
       pg_temp.u(139, d) < 0.97
FROM (SELECT g AS d, pg_temp.h(130, g) % 2 = 1 AS female FROM generate_series(:lo, :hi) AS g OFFSET 0) AS s;

-- @patient
INSERT INTO patient (patient_id, medical_record_no, name, gender, birth_date, id_card_no, phone, address,
                     ethnicity, marital_status, blood_type, insurance_type, created_at)
SELECT pid, 'MR' || lpad(pid::text, 10, '0'), pg_temp.pat_name(pid),
       CASE WHEN female THEN '女' ELSE '男' END, birth,
       base17 || pg_temp.id_check(base17),
       '100' || lpad((pg_temp.h(108, pid) % 100000000)::text, 8, '0'),
       '虚拟省' || pg_temp.pick('{东华市,西岭市,南湖市,北辰市,青川市,云泽市,明州市,安和市}', 109, pid)
           || pg_temp.pick('{青山区,白河区,新城区,高新区,滨江区,长宁区,永安县,清平县}', 110, pid)
           || pg_temp.pick('{建设路,人民路,解放大道,和平街,文化路,中山路,学府路,光明街,幸福巷,胜利路}', 111, pid)
           || (1 + pg_temp.h(112, pid) % 399)::text || '号' || (1 + pg_temp.h(113, pid) % 30)::text || '栋'
           || (1 + pg_temp.h(114, pid) % 28)::text || lpad((1 + pg_temp.h(121, pid) % 4)::text, 2, '0') || '室',
       CASE WHEN pg_temp.u(115, pid) < 0.91 THEN '汉族'
            ELSE pg_temp.pick('{回族,满族,壮族,维吾尔族,苗族,彝族,土家族,藏族,蒙古族,朝鲜族}', 116, pid) END,
       CASE WHEN birth > date '2003-01-01' THEN '未婚'
            ELSE pg_temp.pick('{已婚,已婚,已婚,已婚,已婚,未婚,离异,丧偶}', 117, pid) END,
       pg_temp.pick('{A型,A型,A型,B型,B型,B型,O型,O型,O型,O型,AB型,未查}', 118, pid),
       pg_temp.pick('{城镇职工基本医疗保险,城镇职工基本医疗保险,城镇职工基本医疗保险,城乡居民基本医疗保险,
                      城乡居民基本医疗保险,城乡居民基本医疗保险,自费,商业医疗保险,公费医疗}', 119, pid),
       greatest(birth::timestamp, timestamp '2010-01-01' + (pg_temp.h(120, pid) % 410000000) * interval '1 second')
FROM (SELECT pid, female, birth,
             '999' || lpad((pg_temp.h(106, pid) % 1000)::text, 3, '0') || to_char(birth, 'YYYYMMDD')
                   || lpad((2 * (pg_temp.h(107, pid) % 500) + CASE WHEN female THEN 0 ELSE 1 END)::text, 3, '0')
                   AS base17
      FROM (SELECT g AS pid, pg_temp.pat_female(g) AS female, pg_temp.pat_birth(g) AS birth
            FROM generate_series(:lo, :hi) AS g OFFSET 0) AS s1
      OFFSET 0) AS s2;

-- @outpatient_visit
INSERT INTO outpatient_visit (visit_id, visit_no, patient_id, department_id, doctor_id, visit_time, visit_type,
                              chief_complaint, diagnosis_code, diagnosis_name, fee)
SELECT s.v, 'MZ' || lpad(s.v::text, 12, '0'), pg_temp.visit_patient(s.v), s.dept, s.doc, pg_temp.visit_time(s.v),
       CASE WHEN x.department_id = 19 THEN '急诊' WHEN pg_temp.u(144, s.v) < 0.6 THEN '初诊' ELSE '复诊' END,
       x.typical_symptom || pg_temp.pick(pg_temp.durations(), 146, s.v),
       x.icd10_code, x.diagnosis_name,
       round((12 + 600 * pg_temp.u(147, s.v) ^ 3)::numeric, 2)
FROM (SELECT v, doc, pg_temp.doctor_dept(doc) AS dept
      FROM (SELECT g AS v, pg_temp.visit_doctor(g) AS doc FROM generate_series(:lo, :hi) AS g OFFSET 0) AS s1
      OFFSET 0) AS s
JOIN diagnosis_dict AS x ON x.diagnosis_id = pg_temp.dept_dx(s.dept, 145, s.v);

-- @prescription
INSERT INTO prescription (prescription_id, prescription_no, visit_id, patient_id, doctor_id, prescribed_at,
                          rx_type, status)
SELECT p, 'CF' || lpad(p::text, 12, '0'), v, pg_temp.visit_patient(v), pg_temp.visit_doctor(v),
       pg_temp.visit_time(v) + make_interval(mins => (5 + pg_temp.h(162, p) % 40)::integer),
       (ARRAY['西药', '中成药', '中草药'])[pg_temp.rx_kind(p)],
       pg_temp.pick('{已发药,已发药,已发药,已发药,已发药,已发药,已收费,已退费}', 163, p)
FROM (SELECT g AS p, pg_temp.ri(160, g, :n_outpatient_visit) AS v FROM generate_series(:lo, :hi) AS g OFFSET 0) AS s;

-- @prescription_item
INSERT INTO prescription_item (item_id, prescription_id, drug_id, drug_name, specification, dose, dose_unit,
                               frequency, route, days, quantity, unit_price, amount)
SELECT i, p, d.drug_id, d.generic_name, d.specification, d.default_dose, d.dose_unit, d.default_frequency,
       d.default_route, days, q.quantity, d.unit_price, round(q.quantity * d.unit_price, 2)
FROM (SELECT i, p, pg_temp.rx_drug(pg_temp.rx_kind(p), 171, i) AS drug_id,
             (ARRAY[3, 5, 7, 7, 7, 14])[1 + pg_temp.h(172, i) % 6]::smallint AS days
      FROM (SELECT g AS i, pg_temp.cover(g, :n_prescription, 170) AS p
            FROM generate_series(:lo, :hi) AS g OFFSET 0) AS s1
      OFFSET 0) AS s
JOIN drug AS d ON d.drug_id = s.drug_id
CROSS JOIN LATERAL (SELECT CASE WHEN d.category = '中草药' THEN d.default_dose * s.days
                                ELSE 1 + pg_temp.h(173, s.i) % 3 END AS quantity) AS q;

-- @admission
INSERT INTO admission (admission_id, inpatient_no, patient_id, department_id, attending_doctor_id, ward, bed_no,
                       admit_time, discharge_time, admission_source, admit_diagnosis_code, admit_diagnosis_name,
                       discharge_status)
SELECT s.a, 'ZY' || lpad(s.a::text, 10, '0'), pg_temp.adm_patient(s.a), s.dept, s.doc,
       dp.dept_name || (ARRAY['一', '二'])[1 + pg_temp.h(198, s.a) % 2] || '病区',
       (1 + pg_temp.h(197, s.a) % 40)::text || '床',
       pg_temp.adm_time(s.a), s.disc,
       CASE WHEN s.dept = 19 THEN '急诊' ELSE pg_temp.pick('{门诊,门诊,门诊,门诊,门诊,急诊,急诊,转院}', 199, s.a) END,
       x.icd10_code, x.diagnosis_name,
       CASE WHEN s.disc IS NULL THEN NULL
            WHEN pg_temp.u(200, s.a) < 0.30 THEN '治愈'
            WHEN pg_temp.u(200, s.a) < 0.88 THEN '好转'
            WHEN pg_temp.u(200, s.a) < 0.95 THEN '未愈'
            WHEN pg_temp.u(200, s.a) < 0.985 THEN '转院'
            ELSE '死亡' END
FROM (SELECT a, doc, pg_temp.doctor_dept(doc) AS dept, disc
      FROM (SELECT g AS a, pg_temp.adm_doctor(g) AS doc, pg_temp.adm_discharge(g) AS disc
            FROM generate_series(:lo, :hi) AS g OFFSET 0) AS s1
      OFFSET 0) AS s
JOIN department AS dp ON dp.department_id = s.dept
JOIN diagnosis_dict AS x ON x.diagnosis_id = pg_temp.dept_dx(s.dept, 196, s.a);

-- @medical_order
-- nursing and diet orders are standing (长期), examinations one-off (临时), the rest either
INSERT INTO medical_order (order_id, admission_id, patient_id, doctor_id, order_type, category, item_code,
                           item_name, dose, dose_unit, frequency, route, start_time, stop_time, status)
SELECT o, a, pg_temp.adm_patient(a), pg_temp.adm_doctor(a),
       CASE WHEN standing THEN '长期' ELSE '临时' END,
       category, item_code, item_name, dose, dose_unit,
       CASE WHEN standing THEN frequency ELSE 'st' END,
       route, start_time,
       CASE WHEN NOT standing THEN start_time + interval '1 hour'
            WHEN active THEN NULL
            ELSE least(last, start_time + make_interval(days => (1 + pg_temp.h(216, o) % 10)::integer)) END,
       CASE WHEN standing AND active THEN '执行中' ELSE '已停止' END
FROM (SELECT o, a, standing, category, item_code, item_name, dose, dose_unit, frequency, route, last,
             standing AND disc IS NULL AND pg_temp.u(217, o) < 0.6 AS active,
             admit + (last - admit) * (0.7 * pg_temp.u(215, o)) AS start_time
      FROM (SELECT s2.o, s2.a, s2.admit, s2.last, s2.disc,
                   CASE WHEN ti.category IN ('护理', '饮食') THEN true WHEN ti.category = '检查' THEN false
                        ELSE pg_temp.u(211, s2.o) < 0.55 END AS standing,
                   coalesce(ti.category, '药品') AS category,
                   coalesce(dr.drug_code, ti.item_code) AS item_code,
                   coalesce(dr.generic_name, ti.item_name) AS item_name,
                   dr.default_dose AS dose, dr.dose_unit, coalesce(dr.default_frequency, ti.frequency) AS frequency,
                   dr.default_route AS route
            FROM (SELECT o, a, pg_temp.adm_time(a) AS admit, pg_temp.adm_last(a) AS last,
                         pg_temp.adm_discharge(a) AS disc,
                         CASE WHEN pg_temp.u(212, o) < 0.6
                              THEN :drug_lo_1 + pg_temp.h(213, o) % (:drug_n_1 + :drug_n_2) END AS drug_id,
                         CASE WHEN pg_temp.u(212, o) >= 0.6 THEN pg_temp.ri(214, o, :n_treatment_item) END AS item_id
                  FROM (SELECT g AS o, pg_temp.cover(g, :n_admission, 210) AS a
                        FROM generate_series(:lo, :hi) AS g OFFSET 0) AS s1
                  OFFSET 0) AS s2
            LEFT JOIN drug AS dr ON dr.drug_id = s2.drug_id
            LEFT JOIN treatment_item AS ti ON ti.item_id = s2.item_id
            OFFSET 0) AS s3
      OFFSET 0) AS s;

-- @lab_result
INSERT INTO lab_result (result_id, patient_id, visit_id, admission_id, test_code, test_name, specimen, result_value,
                        unit, reference_range, abnormal_flag, reported_at)
SELECT r, patient_id, v, a, test_code, test_name, specimen, val, unit, reference_range,
       CASE WHEN val > ref_high THEN 'H' WHEN val < ref_low THEN 'L' ELSE 'N' END, reported_at
FROM (SELECT s.r, s.v, s.a, t.test_code, t.test_name, t.specimen, t.unit, t.reference_range, t.ref_low, t.ref_high,
             CASE WHEN s.v IS NOT NULL THEN pg_temp.visit_patient(s.v) ELSE pg_temp.adm_patient(s.a) END AS patient_id,
             CASE WHEN s.v IS NOT NULL
                  THEN pg_temp.visit_time(s.v) + make_interval(secs => 1800 + pg_temp.h(236, s.r) % 10800)
                  ELSE pg_temp.adm_time(s.a) + (pg_temp.adm_last(s.a) - pg_temp.adm_time(s.a)) * pg_temp.u(236, s.r)
             END AS reported_at,
             round(greatest(0, (t.ref_low + t.ref_high)::double precision / 2
                   + (t.ref_high - t.ref_low)::double precision / 3.3 * CASE WHEN s.a IS NULL THEN 1.0 ELSE 1.5 END
                     * sqrt(-2 * ln(1 - pg_temp.u(234, s.r))) * cos(2 * pi() * pg_temp.u(235, s.r)))::numeric,
                   t.decimals) AS val
      FROM (SELECT g AS r,
                   CASE WHEN pg_temp.u(230, g) < 0.6 THEN pg_temp.ri(231, g, :n_outpatient_visit) END AS v,
                   CASE WHEN pg_temp.u(230, g) >= 0.6 THEN pg_temp.ri(232, g, :n_admission) END AS a,
                   pg_temp.ri(233, g, :n_lab_test_item) AS test_id
            FROM generate_series(:lo, :hi) AS g OFFSET 0) AS s
      JOIN lab_test_item AS t ON t.test_id = s.test_id
      OFFSET 0) AS s2;

-- @medical_record_document
-- kind: 0 入院记录 (one per admission), 1-4 日常病程记录, 5 手术记录, 6 会诊记录, 7 出院记录, 8-9 门诊病历
INSERT INTO medical_record_document (document_id, patient_id, admission_id, author_doctor_id, doc_type, title,
                                     content, created_at)
SELECT d, pid, a, author, doc_type, doc_type || ' ' || to_char(created_at, 'YYYY-MM-DD HH24:MI'),
       '患者' || pname || '，' || gender || '，' || age::text || '岁，'
       || CASE doc_type
          WHEN '入院记录' THEN
               '因“' || symptom || dur || '”入院。现病史：患者' || dur || '前'
            || pg_temp.pick_k(pg_temp.hpi(), 260, d, 0) || '，' || pg_temp.pick_k(pg_temp.hpi(), 260, d, 1) || '，'
            || pg_temp.pick_k(pg_temp.hpi(), 260, d, 2)
            || '。既往史：' || pg_temp.pick_k(pg_temp.history(), 262, d, 0) || '；'
            || pg_temp.pick_k(pg_temp.history(), 262, d, 1)
            || '。个人史：' || pg_temp.pick_k(pg_temp.personal(), 264, d, 0) || '；'
            || pg_temp.pick_k(pg_temp.personal(), 264, d, 1)
            || '。体格检查：T ' || vitals || pg_temp.pick_k(pg_temp.exam(), 266, d, 0) || '，'
            || pg_temp.pick_k(pg_temp.exam(), 266, d, 1) || '，' || pg_temp.pick_k(pg_temp.exam(), 266, d, 2)
            || '。辅助检查：' || pg_temp.pick_k(pg_temp.aux(), 268, d, 0) || '；' || pg_temp.pick_k(pg_temp.aux(), 268, d, 1)
            || '。初步诊断：' || dx_name || '。诊疗计划：1.' || pg_temp.pick_k(pg_temp.plan(), 270, d, 0)
            || '；2.' || pg_temp.pick_k(pg_temp.plan(), 270, d, 1) || '；3.' || pg_temp.pick_k(pg_temp.plan(), 270, d, 2) || '。'
          WHEN '日常病程记录' THEN
               '诊断：' || dx_name || '。' || to_char(created_at, 'YYYY-MM-DD HH24:MI') || ' 查房记录：'
            || pg_temp.pick_k(pg_temp.progress(), 272, d, 0) || '。' || pg_temp.pick_k(pg_temp.progress(), 272, d, 1)
            || '。' || pg_temp.pick_k(pg_temp.progress(), 272, d, 2) || '。查体：T ' || vitals
            || pg_temp.pick_k(pg_temp.exam(), 266, d, 0) || '，' || pg_temp.pick_k(pg_temp.exam(), 266, d, 1) || '。'
            || pg_temp.pick_k(pg_temp.aux(), 268, d, 0) || '。处理：' || pg_temp.pick_k(pg_temp.plan(), 270, d, 0) || '；'
            || pg_temp.pick_k(pg_temp.plan(), 270, d, 1) || '。'
          WHEN '手术记录' THEN
               '术前诊断：' || dx_name || '。麻醉方式：'
            || pg_temp.pick('{全身麻醉,椎管内麻醉,局部浸润麻醉,神经阻滞麻醉}', 278, d) || '。手术经过：'
            || pg_temp.pick_k(pg_temp.surgery(), 274, d, 0) || '，' || pg_temp.pick_k(pg_temp.surgery(), 274, d, 1) || '，'
            || pg_temp.pick_k(pg_temp.surgery(), 274, d, 2) || '，' || pg_temp.pick_k(pg_temp.surgery(), 274, d, 3)
            || '。术中出血约' || (10 + pg_temp.h(279, d) % 300)::text || 'ml，'
            || pg_temp.pick_k(pg_temp.surgery(), 274, d, 4) || '。术后处理：' || pg_temp.pick_k(pg_temp.plan(), 270, d, 0)
            || '；' || pg_temp.pick_k(pg_temp.plan(), 270, d, 1) || '。'
          WHEN '会诊记录' THEN
               '因“' || dx_name || '”请'
            || pg_temp.pick('{心血管内科,呼吸内科,内分泌科,神经内科,营养科,康复医学科,感染科}', 278, d)
            || '会诊。会诊意见：' || pg_temp.pick_k(pg_temp.progress(), 272, d, 0) || '；'
            || pg_temp.pick_k(pg_temp.aux(), 268, d, 0) || '；建议' || pg_temp.pick_k(pg_temp.plan(), 270, d, 0) || '；'
            || pg_temp.pick_k(pg_temp.plan(), 270, d, 1) || '。'
          WHEN '出院记录' THEN
               '因“' || symptom || dur || '”于' || to_char(admit, 'YYYY-MM-DD') || '入院，于'
            || to_char(created_at, 'YYYY-MM-DD') || '出院，共住院' || (created_at::date - admit::date)::text
            || '天。入院情况：' || pg_temp.pick_k(pg_temp.exam(), 266, d, 0) || '。诊疗经过：'
            || pg_temp.pick_k(pg_temp.plan(), 270, d, 0) || '，' || pg_temp.pick_k(pg_temp.progress(), 272, d, 0)
            || '。出院诊断：' || dx_name || '。出院情况：' || pg_temp.pick_k(pg_temp.progress(), 272, d, 1)
            || '。出院医嘱：' || pg_temp.pick_k(pg_temp.advice(), 276, d, 0) || '；'
            || pg_temp.pick_k(pg_temp.advice(), 276, d, 1) || '。'
          ELSE
               '主诉：' || symptom || dur || '。现病史：' || pg_temp.pick_k(pg_temp.hpi(), 260, d, 0) || '，'
            || pg_temp.pick_k(pg_temp.hpi(), 260, d, 1) || '。既往史：' || pg_temp.pick_k(pg_temp.history(), 262, d, 0)
            || '。查体：' || pg_temp.pick_k(pg_temp.exam(), 266, d, 0) || '，' || pg_temp.pick_k(pg_temp.exam(), 266, d, 1)
            || '。诊断：' || dx_name || '。处理：' || pg_temp.pick_k(pg_temp.plan(), 270, d, 0) || '；'
            || pg_temp.pick_k(pg_temp.advice(), 276, d, 0) || '。'
          END,
       created_at
FROM (SELECT d, a, pid, author, admit, doc_type, created_at, pg_temp.pat_name(pid) AS pname,
             CASE WHEN pg_temp.pat_female(pid) THEN '女' ELSE '男' END AS gender,
             (created_at::date - pg_temp.pat_birth(pid)) / 366 AS age,
             x.typical_symptom AS symptom, x.diagnosis_name AS dx_name,
             pg_temp.pick(pg_temp.durations(), 258, d) AS dur,
             round((360 + pg_temp.h(280, d) % 28) / 10.0, 1)::text || '℃，P ' || (62 + pg_temp.h(281, d) % 40)::text
                 || '次/分，R ' || (16 + pg_temp.h(282, d) % 8)::text || '次/分，BP '
                 || (100 + pg_temp.h(283, d) % 60)::text || '/' || (60 + pg_temp.h(284, d) % 35)::text || 'mmHg，'
                 AS vitals
      FROM (SELECT d, a, pid, author, admit, dx_id,
                   CASE kind WHEN 0 THEN '入院记录' WHEN 5 THEN '手术记录' WHEN 6 THEN '会诊记录'
                             WHEN 7 THEN CASE WHEN disc IS NULL THEN '日常病程记录' ELSE '出院记录' END
                             WHEN 8 THEN '门诊病历' WHEN 9 THEN '门诊病历' ELSE '日常病程记录' END AS doc_type,
                   CASE WHEN a IS NULL
                        THEN timestamp '2023-01-01 08:00'
                             + make_interval(days => (pg_temp.h(256, d) % 1096)::integer,
                                             secs => pg_temp.h(257, d) % 32400)
                        WHEN kind = 0 THEN admit + make_interval(mins => (30 + pg_temp.h(256, d) % 300)::integer)
                        WHEN kind = 7 AND disc IS NOT NULL THEN disc
                        ELSE admit + (last - admit) * pg_temp.u(256, d) END AS created_at
            FROM (SELECT d, kind, a, pg_temp.adm_time(a) AS admit, pg_temp.adm_last(a) AS last,
                         pg_temp.adm_discharge(a) AS disc,
                         CASE WHEN a IS NULL THEN pg_temp.ri(252, d, :n_patient) ELSE pg_temp.adm_patient(a) END AS pid,
                         CASE WHEN a IS NULL THEN pg_temp.ri(255, d, :n_doctor)
                              ELSE pg_temp.adm_doctor(a) END AS author,
                         CASE WHEN a IS NULL THEN pg_temp.ri(254, d, :n_diagnosis_dict)
                              ELSE pg_temp.adm_dx(a) END AS dx_id
                  FROM (SELECT d, kind,
                               CASE WHEN kind = 0 THEN d WHEN kind < 8 THEN pg_temp.ri(251, d, :n_admission) END AS a
                        FROM (SELECT g AS d,
                                     CASE WHEN g <= :n_admission THEN 0 ELSE 1 + pg_temp.h(253, g) % 9 END AS kind
                              FROM generate_series(:lo, :hi) AS g OFFSET 0) AS s1
                        OFFSET 0) AS s2
                  OFFSET 0) AS s3
            OFFSET 0) AS s4
      JOIN diagnosis_dict AS x ON x.diagnosis_id = s4.dx_id
      OFFSET 0) AS s5;
