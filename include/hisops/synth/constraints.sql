-- 主键、索引与外键 Keys, indexes and foreign keys, added after the bulk load.
--
-- "-- @keys <table>" sections build the primary key and indexes of one table (sections of
-- different tables run in parallel sessions). "-- @fk <table>" sections add that table's
-- foreign keys NOT VALID (a brief lock, run one after another); the generator then runs
-- VALIDATE CONSTRAINT for each of them, several tables in parallel.

-- @keys department
ALTER TABLE department ADD CONSTRAINT pk_department PRIMARY KEY (department_id);
ALTER TABLE department ADD CONSTRAINT uq_department_code UNIQUE (dept_code);

-- @keys diagnosis_dict
ALTER TABLE diagnosis_dict ADD CONSTRAINT pk_diagnosis_dict PRIMARY KEY (diagnosis_id);
ALTER TABLE diagnosis_dict ADD CONSTRAINT uq_diagnosis_dict_icd10 UNIQUE (icd10_code);

-- @keys drug
ALTER TABLE drug ADD CONSTRAINT pk_drug PRIMARY KEY (drug_id);
ALTER TABLE drug ADD CONSTRAINT uq_drug_code UNIQUE (drug_code);

-- @keys treatment_item
ALTER TABLE treatment_item ADD CONSTRAINT pk_treatment_item PRIMARY KEY (item_id);
ALTER TABLE treatment_item ADD CONSTRAINT uq_treatment_item_code UNIQUE (item_code);

-- @keys lab_test_item
ALTER TABLE lab_test_item ADD CONSTRAINT pk_lab_test_item PRIMARY KEY (test_id);
ALTER TABLE lab_test_item ADD CONSTRAINT uq_lab_test_item_code UNIQUE (test_code);

-- @keys doctor
ALTER TABLE doctor ADD CONSTRAINT pk_doctor PRIMARY KEY (doctor_id);
ALTER TABLE doctor ADD CONSTRAINT uq_doctor_staff_no UNIQUE (staff_no);
CREATE INDEX ix_doctor_department ON doctor (department_id);

-- @keys patient
ALTER TABLE patient ADD CONSTRAINT pk_patient PRIMARY KEY (patient_id);
ALTER TABLE patient ADD CONSTRAINT uq_patient_mrn UNIQUE (medical_record_no);
-- not unique: fake numbers are random, and real HIS data has duplicates too
CREATE INDEX ix_patient_id_card_no ON patient (id_card_no);
CREATE INDEX ix_patient_name ON patient (name);

-- @keys outpatient_visit
ALTER TABLE outpatient_visit ADD CONSTRAINT pk_outpatient_visit PRIMARY KEY (visit_id);
CREATE INDEX ix_outpatient_visit_patient ON outpatient_visit (patient_id);
CREATE INDEX ix_outpatient_visit_time ON outpatient_visit (visit_time);
CREATE INDEX ix_outpatient_visit_doctor ON outpatient_visit (doctor_id);

-- @keys prescription
ALTER TABLE prescription ADD CONSTRAINT pk_prescription PRIMARY KEY (prescription_id);
CREATE INDEX ix_prescription_visit ON prescription (visit_id);
CREATE INDEX ix_prescription_patient ON prescription (patient_id);

-- @keys prescription_item
ALTER TABLE prescription_item ADD CONSTRAINT pk_prescription_item PRIMARY KEY (item_id);
CREATE INDEX ix_prescription_item_prescription ON prescription_item (prescription_id);

-- @keys admission
ALTER TABLE admission ADD CONSTRAINT pk_admission PRIMARY KEY (admission_id);
ALTER TABLE admission ADD CONSTRAINT uq_admission_inpatient_no UNIQUE (inpatient_no);
CREATE INDEX ix_admission_patient ON admission (patient_id);
CREATE INDEX ix_admission_admit_time ON admission (admit_time);
-- 在院患者 patients currently in hospital
CREATE INDEX ix_admission_in_hospital ON admission (department_id) WHERE discharge_time IS NULL;

-- @keys medical_order
ALTER TABLE medical_order ADD CONSTRAINT pk_medical_order PRIMARY KEY (order_id);
CREATE INDEX ix_medical_order_admission ON medical_order (admission_id);

-- @keys lab_result
ALTER TABLE lab_result ADD CONSTRAINT pk_lab_result PRIMARY KEY (result_id);
CREATE INDEX ix_lab_result_patient ON lab_result (patient_id);
CREATE INDEX ix_lab_result_visit ON lab_result (visit_id) WHERE visit_id IS NOT NULL;
CREATE INDEX ix_lab_result_admission ON lab_result (admission_id) WHERE admission_id IS NOT NULL;

-- @keys medical_record_document
ALTER TABLE medical_record_document ADD CONSTRAINT pk_medical_record_document PRIMARY KEY (document_id);
CREATE INDEX ix_medical_record_document_patient ON medical_record_document (patient_id);
CREATE INDEX ix_medical_record_document_admission ON medical_record_document (admission_id)
    WHERE admission_id IS NOT NULL;

-- @fk diagnosis_dict
ALTER TABLE diagnosis_dict ADD CONSTRAINT fk_diagnosis_dict_department
    FOREIGN KEY (department_id) REFERENCES department NOT VALID;

-- @fk doctor
ALTER TABLE doctor ADD CONSTRAINT fk_doctor_department
    FOREIGN KEY (department_id) REFERENCES department NOT VALID;

-- @fk outpatient_visit
ALTER TABLE outpatient_visit ADD CONSTRAINT fk_outpatient_visit_patient
    FOREIGN KEY (patient_id) REFERENCES patient NOT VALID;
ALTER TABLE outpatient_visit ADD CONSTRAINT fk_outpatient_visit_department
    FOREIGN KEY (department_id) REFERENCES department NOT VALID;
ALTER TABLE outpatient_visit ADD CONSTRAINT fk_outpatient_visit_doctor
    FOREIGN KEY (doctor_id) REFERENCES doctor NOT VALID;
ALTER TABLE outpatient_visit ADD CONSTRAINT fk_outpatient_visit_diagnosis
    FOREIGN KEY (diagnosis_code) REFERENCES diagnosis_dict (icd10_code) NOT VALID;

-- @fk prescription
ALTER TABLE prescription ADD CONSTRAINT fk_prescription_visit
    FOREIGN KEY (visit_id) REFERENCES outpatient_visit NOT VALID;
ALTER TABLE prescription ADD CONSTRAINT fk_prescription_patient
    FOREIGN KEY (patient_id) REFERENCES patient NOT VALID;
ALTER TABLE prescription ADD CONSTRAINT fk_prescription_doctor
    FOREIGN KEY (doctor_id) REFERENCES doctor NOT VALID;

-- @fk prescription_item
ALTER TABLE prescription_item ADD CONSTRAINT fk_prescription_item_prescription
    FOREIGN KEY (prescription_id) REFERENCES prescription NOT VALID;
ALTER TABLE prescription_item ADD CONSTRAINT fk_prescription_item_drug
    FOREIGN KEY (drug_id) REFERENCES drug NOT VALID;

-- @fk admission
ALTER TABLE admission ADD CONSTRAINT fk_admission_patient
    FOREIGN KEY (patient_id) REFERENCES patient NOT VALID;
ALTER TABLE admission ADD CONSTRAINT fk_admission_department
    FOREIGN KEY (department_id) REFERENCES department NOT VALID;
ALTER TABLE admission ADD CONSTRAINT fk_admission_doctor
    FOREIGN KEY (attending_doctor_id) REFERENCES doctor NOT VALID;
ALTER TABLE admission ADD CONSTRAINT fk_admission_diagnosis
    FOREIGN KEY (admit_diagnosis_code) REFERENCES diagnosis_dict (icd10_code) NOT VALID;

-- @fk medical_order
ALTER TABLE medical_order ADD CONSTRAINT fk_medical_order_admission
    FOREIGN KEY (admission_id) REFERENCES admission NOT VALID;
ALTER TABLE medical_order ADD CONSTRAINT fk_medical_order_patient
    FOREIGN KEY (patient_id) REFERENCES patient NOT VALID;
ALTER TABLE medical_order ADD CONSTRAINT fk_medical_order_doctor
    FOREIGN KEY (doctor_id) REFERENCES doctor NOT VALID;

-- @fk lab_result
ALTER TABLE lab_result ADD CONSTRAINT fk_lab_result_patient
    FOREIGN KEY (patient_id) REFERENCES patient NOT VALID;
ALTER TABLE lab_result ADD CONSTRAINT fk_lab_result_visit
    FOREIGN KEY (visit_id) REFERENCES outpatient_visit NOT VALID;
ALTER TABLE lab_result ADD CONSTRAINT fk_lab_result_admission
    FOREIGN KEY (admission_id) REFERENCES admission NOT VALID;
ALTER TABLE lab_result ADD CONSTRAINT fk_lab_result_test
    FOREIGN KEY (test_code) REFERENCES lab_test_item (test_code) NOT VALID;

-- @fk medical_record_document
ALTER TABLE medical_record_document ADD CONSTRAINT fk_medical_record_document_patient
    FOREIGN KEY (patient_id) REFERENCES patient NOT VALID;
ALTER TABLE medical_record_document ADD CONSTRAINT fk_medical_record_document_admission
    FOREIGN KEY (admission_id) REFERENCES admission NOT VALID;
ALTER TABLE medical_record_document ADD CONSTRAINT fk_medical_record_document_doctor
    FOREIGN KEY (author_doctor_id) REFERENCES doctor NOT VALID;
